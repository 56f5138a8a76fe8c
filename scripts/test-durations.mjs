// Keeps vitest's record of each test file's duration (its results cache,
// node_modules/.vite/vitest/<hash>/results.json) outside the repository between `npm test` runs,
// as the built tools are. Vitest starts the files it knows longest first; a fresh clone knows
// none and starts the largest files first instead. In the kubernetes tier, three files at once,
// that started its longest file (a small one) last: 163 s instead of ~125.
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";

/** Vitest's own directory of `<hash>/results.json`, and where they are kept. */
function dirs(root, cacheRoot) {
  return { local: join(root, "node_modules", ".vite", "vitest"), kept: join(cacheRoot, "vitest") };
}

/** Copies `from` to `to` through a temporary file and a rename, so no reader sees half a file. */
function copyWhole(from, to) {
  mkdirSync(dirname(to), { recursive: true });
  const temporary = `${to}.${process.pid}.tmp`;
  copyFileSync(from, temporary);
  renameSync(temporary, to);
}

function resultFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((hash) => ({ hash, file: join(dir, hash, "results.json") }))
    .filter(({ file }) => existsSync(file));
}

/** Before the tiers: brings back the kept durations where this checkout has none. */
export function restoreTestDurations(root, cacheRoot) {
  const { local, kept } = dirs(root, cacheRoot);
  let restored = 0;
  for (const { hash, file } of resultFiles(kept)) {
    const target = join(local, hash, "results.json");
    if (existsSync(target)) continue;
    copyWhole(file, target);
    restored += 1;
  }
  return restored;
}

/** After the tiers: keeps this checkout's durations for the next run. */
export function saveTestDurations(root, cacheRoot) {
  const { local, kept } = dirs(root, cacheRoot);
  for (const { hash, file } of resultFiles(local)) copyWhole(file, join(kept, hash, "results.json"));
}
