#!/usr/bin/env node
// Runs vitest and ends stdout with one line CI can parse: `N passed, N failed[, N skipped]`.
// Extra arguments go to vitest (e.g. `node scripts/test.mjs packages/bus`, or one tier:
// `node scripts/test.mjs --project unit`), except `--results=<file>`: where the JSON report goes
// (default .vitest-results.json; the turbo test tiers keep theirs under .test-results/). The final
// counts also go to <file>.summary.json, which ci.mjs adds up.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { readSummary, summaryLine } from "./test-summary.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const resultsArg = args.find((a) => a.startsWith("--results="));
const resultsFile = resolve(root, resultsArg ? resultsArg.slice("--results=".length) : ".vitest-results.json");
const vitestArgs = args.filter((a) => a !== resultsArg);
// See bootstrap.mjs: keeps pnpm from failing on the `packageManager` pin.
const env = { ...process.env, pnpm_config_pm_on_fail: "ignore" };

function pnpmCommand() {
  if (spawnSync("pnpm", ["--version"], { stdio: "ignore", env }).status === 0) return "pnpm";
  const local = join(root, ".tools", "node_modules", ".bin", "pnpm");
  return existsSync(local) ? local : "pnpm";
}

const summaryFile = `${resultsFile}.summary.json`;
rmSync(resultsFile, { force: true });
rmSync(summaryFile, { force: true });
mkdirSync(dirname(resultsFile), { recursive: true });
const vitest = spawnSync(
  pnpmCommand(),
  ["exec", "vitest", "run", "--reporter=default", "--reporter=json", `--outputFile=${resultsFile}`, ...vitestArgs],
  { cwd: root, stdio: "inherit", env },
);

const summary = readSummary(resultsFile);
if (!summary) {
  process.stderr.write(`fenceline: vitest wrote no results (${vitest.error?.message ?? `exit ${vitest.status ?? vitest.signal}`})\n`);
  writeFileSync(summaryFile, JSON.stringify({ passed: 0, failed: 1, skipped: 0 }));
  process.stdout.write("0 passed, 1 failed\n");
  process.exit(1);
}
if (vitest.status !== 0 && summary.failed === 0) {
  // For example an unhandled error outside any test: vitest fails the run, so do we.
  process.stderr.write(
    `fenceline: vitest exited with ${vitest.status ?? vitest.signal} although no test failed; counting it as a failure\n`,
  );
  summary.failed = 1;
}

writeFileSync(summaryFile, JSON.stringify(summary));
process.stdout.write(`${summaryLine(summary)}\n`);
process.exit(summary.failed > 0 ? 1 : 0);
