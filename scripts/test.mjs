#!/usr/bin/env node
// Runs vitest and ends stdout with one line CI can parse: `N passed, N failed[, N skipped]`.
// Extra arguments go to vitest (e.g. `node scripts/test.mjs packages/bus`).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const resultsFile = join(root, ".vitest-results.json");
// See bootstrap.mjs: keeps pnpm from failing on the `packageManager` pin.
const env = { ...process.env, pnpm_config_pm_on_fail: "ignore" };

function pnpmCommand() {
  if (spawnSync("pnpm", ["--version"], { stdio: "ignore", env }).status === 0) return "pnpm";
  const local = join(root, ".tools", "node_modules", ".bin", "pnpm");
  return existsSync(local) ? local : "pnpm";
}

rmSync(resultsFile, { force: true });
const vitest = spawnSync(
  pnpmCommand(),
  ["exec", "vitest", "run", "--reporter=default", "--reporter=json", `--outputFile=${resultsFile}`, ...process.argv.slice(2)],
  { cwd: root, stdio: "inherit", env },
);

let results;
try {
  results = JSON.parse(readFileSync(resultsFile, "utf8"));
} catch {
  process.stderr.write(`fenceline: vitest wrote no results (${vitest.error?.message ?? `exit ${vitest.status ?? vitest.signal}`})\n`);
  process.stdout.write("0 passed, 1 failed\n");
  process.exit(1);
}

const passed = results.numPassedTests ?? 0;
const skipped = (results.numPendingTests ?? 0) + (results.numTodoTests ?? 0);
// A file that fails to load has no failed test in it, but it did fail.
const brokenFiles = (results.testResults ?? []).filter(
  (file) => file.status === "failed" && !(file.assertionResults ?? []).some((t) => t.status === "failed"),
).length;
let failed = (results.numFailedTests ?? 0) + brokenFiles;
if (vitest.status !== 0 && failed === 0) {
  // For example an unhandled error outside any test: vitest fails the run, so do we.
  process.stderr.write(`fenceline: vitest exited with ${vitest.status ?? vitest.signal} although no test failed; counting it as a failure\n`);
  failed = 1;
}

process.stdout.write(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}\n`);
process.exit(failed > 0 ? 1 : 0);
