#!/usr/bin/env node
// What `npm test` (and so .ci/run) runs: set up (bootstrap.mjs), lint, format check, knip (unused files,
// exports and dependencies), type-check (packages and tests), then every test tier through
// turbo, which skips a tier whose inputs did not change since it last passed (its report comes
// back from the cache). Prints the time of each step, and ends stdout with one line:
// `N passed, N failed` over every tier's tests, lint, the format check, knip and the type-check
// counting as one check each.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { summaryLine } from "./test-summary.mjs";
import { restoreTestDurations, saveTestDurations } from "./test-durations.mjs";

export const TIERS = ["unit", "nats", "kubernetes", "chaos", "e2e"];
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const env = { ...process.env, pnpm_config_pm_on_fail: "ignore", TURBO_TELEMETRY_DISABLED: "1", TURBO_NO_UPDATE_NOTIFIER: "1" };
const say = (line) => process.stderr.write(`fenceline ci: ${line}\n`);

/** Runs a command with its output on stderr; returns whether it succeeded and how long it took. */
function step(name, cmd, args) {
  const started = Date.now();
  say(`${name} ...`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: ["ignore", 2, 2], env });
  const seconds = (Date.now() - started) / 1000;
  const ok = r.status === 0;
  say(`${name}: ${ok ? "ok" : `failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`})`} in ${seconds.toFixed(1)} s`);
  return { name, ok, seconds };
}

const total = { passed: 0, failed: 0, skipped: 0 };
const setup = step("setup", "node", ["scripts/bootstrap.mjs", "test"]);
if (!setup.ok) {
  process.stdout.write("0 passed, 1 failed\n");
  process.exit(1);
}
const checks = [
  step("lint", "pnpm", ["run", "--silent", "lint"]),
  step("format", "pnpm", ["run", "--silent", "format:check"]),
  step("knip", "pnpm", ["run", "--silent", "knip"]),
  // A package's build is tsc on the same tsconfig as its `typecheck` script (which adds only
  // --noEmit), so a built package is a type-checked one: setup's builds come back from turbo's cache
  // (same env mode, so the same hashes) and this step type-checks the tests. `npm run typecheck`
  // checks the packages again without building them.
  step("typecheck", "pnpm", ["exec", "turbo", "run", "build", "typecheck:tests", "--output-logs=errors-only", "--env-mode=loose"]),
];
for (const check of checks) total[check.ok ? "passed" : "failed"] += 1;

// The toolchain's cache root (built by setup) keeps vitest's file durations between runs.
const toolCache = (await import("../packages/toolchain/dist/index.js")).cacheRoot();
const restored = restoreTestDurations(root, toolCache);
if (restored > 0) say(`test durations of an earlier run restored from ${join(toolCache, "vitest")}`);

// One tier at a time: each already uses both cores, and the servers they start are timing-sensitive.
const tiers = step("tests", "pnpm", [
  "exec",
  "turbo",
  "run",
  ...TIERS.map((t) => `test:${t}`),
  "--concurrency=1",
  "--continue",
  "--env-mode=loose",
  "--output-logs=new-only",
]);
saveTestDurations(root, toolCache);
for (const tier of TIERS) {
  const summary = readSummaryFile(tier);
  if (!summary) {
    say(`tier ${tier}: no results`);
    total.failed += 1;
    continue;
  }
  say(`tier ${tier}: ${summaryLine(summary)}`);
  for (const k of ["passed", "failed", "skipped"]) total[k] += summary[k];
}
if (!tiers.ok && total.failed === 0) total.failed = 1;

say(`times: ${[setup, ...checks, tiers].map((s) => `${s.name} ${s.seconds.toFixed(0)} s`).join(", ")}`);
process.stdout.write(`${summaryLine(total)}\n`);
process.exit(total.failed > 0 ? 1 : 0);

/** The final counts test.mjs wrote for a tier (they include a run that failed outside any test). */
function readSummaryFile(tier) {
  try {
    return JSON.parse(readFileSync(join(root, ".test-results", `${tier}.json.summary.json`), "utf8"));
  } catch {
    return null;
  }
}
