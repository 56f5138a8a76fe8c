#!/usr/bin/env node
// `npm run mutation`: StrykerJS over the safety-critical code (stryker.config.mjs), niced, then
// the score per file and, as the last line of stdout, `{ "score": <percent>, "files": { "<path>": <percent> } }`.
// The score counts killed and timed-out mutants over all valid ones (survived and uncovered
// included), as Stryker's mutation score does. Which lines are mutated is found here from the
// code, so the ranges follow the files as they change.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const REPORT = join(root, "reports", "mutation", "mutation.json");
const say = (line) => process.stderr.write(`fenceline mutation: ${line}\n`);

/** 1-based line of the first line matching `pattern` at or after line `from`; fails when there is none. */
function lineOf(file, pattern, from = 1) {
  const lines = readFileSync(join(root, file), "utf8").split("\n");
  for (let i = from - 1; i < lines.length; i++) if (pattern.test(lines[i])) return i + 1;
  throw new Error(`${file}: no line matches ${pattern}`);
}

/** A top-level function: from its `export function name(` to the closing brace at column 0. */
function functionRange(file, name) {
  const start = lineOf(file, new RegExp(`^(export )?function ${name}\\(`));
  return `${file}:${start}-${lineOf(file, /^}/, start)}`;
}

const MACHINE = "statecharts/src/machine.ts";
const machineStart = lineOf(MACHINE, /^export function createNodeMachine\(/);
const POLICY = "packages/contracts/src/policy.ts";
const policyRefine = lineOf(POLICY, /^export const Policy = PolicyShape\.superRefine\(/);
const mutate = [
  // The lifecycle machine's safe time, fencing-level helpers, guards and actions: createNodeMachine
  // up to the state graph (`.createMachine({`), which is data.
  `${MACHINE}:${machineStart}-${lineOf(MACHINE, /^ {2}\}\)\.createMachine\(\{/, machineStart) - 1}`,
  "packages/agent/src/self-fence-decision.ts",
  "packages/actuators/src/fleet-guard.ts",
  // The safe time (its computation, the policy's check of safeTimeMs, the effective value) and
  // fleet limits, which the fleet guard resolves.
  functionRange(POLICY, "computeSafeTime"),
  `${POLICY}:${policyRefine}-${lineOf(POLICY, /^ {2}\}$/, policyRefine)}`,
  functionRange(POLICY, "safeTimeOf"),
  functionRange(POLICY, "resolveLimit"),
  functionRange(POLICY, "percentOf"),
  // The agent's contract check: what a node's heartbeat contract lets the engine assume.
  "packages/contracts/src/guarantee.ts",
];
say(`mutating ${mutate.join(", ")}`);

/**
 * StrykerJS 10 needs Node >= 22; the project runs on 20. Then Stryker and its test workers run on
 * the Node.js the images run, fetched once into the tool cache by the toolchain (built by setup).
 */
async function strykerNode() {
  if (Number(process.versions.node.split(".")[0]) >= 22) return process.execPath;
  const toolchain = join(root, "packages", "toolchain", "dist", "index.js");
  if (!existsSync(toolchain)) {
    say("the toolchain is not built: run `node scripts/bootstrap.mjs test` (or `npm test`) once first");
    process.exit(1);
  }
  const { ensureNodeRuntime } = await import(toolchain);
  return ensureNodeRuntime();
}

// Stryker's incremental report is the next run's starting point; a run killed while writing it
// leaves a file Stryker cannot parse and refuses to start from ("Unexpected end of JSON input").
const INCREMENTAL = join(root, "reports", "mutation", "incremental.json");
if (existsSync(INCREMENTAL)) {
  try {
    JSON.parse(readFileSync(INCREMENTAL, "utf8"));
  } catch {
    say(`${INCREMENTAL} is not whole (a run stopped while writing it?): removed; every mutant runs again`);
    rmSync(INCREMENTAL);
  }
}

const stryker = spawnSync(
  "nice",
  [
    "-n",
    "10",
    await strykerNode(),
    join(root, "node_modules", "@stryker-mutator", "core", "bin", "stryker.js"),
    "run",
    "stryker.config.mjs",
    "--mutate",
    mutate.join(","),
  ],
  { cwd: root, stdio: ["ignore", 2, 2] },
);
if (stryker.status !== 0) {
  say(`stryker exited with ${stryker.status ?? stryker.signal}`);
  process.exit(1);
}

const report = JSON.parse(readFileSync(REPORT, "utf8"));
const DETECTED = new Set(["Killed", "Timeout"]);
const VALID = new Set(["Killed", "Timeout", "Survived", "NoCoverage"]);
const percent = (detected, valid) => (valid === 0 ? 100 : Math.round((detected / valid) * 10_000) / 100);
let detected = 0;
let valid = 0;
const files = {};
for (const [path, { mutants }] of Object.entries(report.files).sort(([a], [b]) => a.localeCompare(b))) {
  const counted = mutants.filter((m) => VALID.has(m.status));
  const caught = counted.filter((m) => DETECTED.has(m.status)).length;
  detected += caught;
  valid += counted.length;
  files[path] = percent(caught, counted.length);
  const survived = counted.filter((m) => m.status === "Survived").length;
  const uncovered = counted.filter((m) => m.status === "NoCoverage").length;
  process.stdout.write(
    `${path}: ${files[path]}% (${caught} of ${counted.length} killed; ${survived} survived, ${uncovered} not covered)\n`,
  );
}
process.stdout.write(`${JSON.stringify({ score: percent(detected, valid), files })}\n`);
