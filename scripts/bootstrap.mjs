#!/usr/bin/env node
// Gets a fresh checkout ready on a machine that only has Node >= 20: pnpm, dependencies, build,
// nats-server. Plain Node, no dependencies: it runs before anything is installed. Progress and
// the output of every sub-command go to stderr; stdout stays clean for the command that follows.
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync, readdirSync, statSync, utimesSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const PNPM_VERSION = "12.21.0";
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
process.chdir(root);

// pnpm otherwise tries to fetch the pinned `packageManager` for every platform now and then, and
// fails outright when one of them is not published (ERR_PNPM_BAD_CONFIG_DEP).
const env = { ...process.env, pnpm_config_pm_on_fail: "ignore", TURBO_TELEMETRY_DISABLED: "1", TURBO_NO_UPDATE_NOTIFIER: "1" };

const say = (line) => process.stderr.write(`fenceline: ${line}\n`);
const fail = (line) => {
  process.stderr.write(`fenceline: error: ${line}\n`);
  process.exit(1);
};

/** Runs a command with its output on stderr; returns its exit status (null when it could not start). */
function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { stdio: ["ignore", 2, 2], env, ...options });
  return r.error ? null : r.status;
}

function runOrFail(what, cmd, args) {
  const status = run(cmd, args);
  if (status !== 0) fail(`${what} failed (${[cmd, ...args].join(" ")} exited with ${status ?? "an error starting"})`);
}

function findBinary(name, extraDirs = []) {
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean), ...extraDirs];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** The version a command prints for --version, or null when it does not run. */
function versionOf(cmd) {
  const r = spawnSync(cmd, ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], env });
  return r.status === 0 ? r.stdout.trim() : null;
}

// a. pnpm
function ensurePnpm() {
  const local = join(root, ".tools", "node_modules", ".bin", "pnpm");
  for (const cmd of ["pnpm", local]) {
    const version = versionOf(cmd);
    if (version) {
      say(`pnpm ${version} found`);
      return cmd;
    }
  }
  say(`installing pnpm ${PNPM_VERSION} ...`);
  if (run("npm", ["install", "-g", `pnpm@${PNPM_VERSION}`]) === 0 && versionOf("pnpm")) return "pnpm";
  say(`global install failed; installing pnpm ${PNPM_VERSION} into .tools/ ...`);
  runOrFail("installing pnpm", "npm", ["install", "--prefix", ".tools", `pnpm@${PNPM_VERSION}`]);
  if (!versionOf(local)) fail(`pnpm was installed into .tools/ but ${local} does not run`);
  return local;
}

// b. dependencies
function workspacePackageJsons() {
  const files = [join(root, "package.json")];
  const yaml = readFileSync(join(root, "pnpm-workspace.yaml"), "utf8");
  const patterns = [];
  let inPackages = false;
  for (const line of yaml.split("\n")) {
    if (/^\S/.test(line)) inPackages = /^packages:/.test(line);
    const item = inPackages && line.match(/^\s+-\s+["']?([^"'#]+?)["']?\s*$/);
    if (item) patterns.push(item[1]);
  }
  for (const pattern of patterns) {
    const dirs = pattern.endsWith("/*")
      ? readdirSync(join(root, pattern.slice(0, -2)), { withFileTypes: true })
          .filter((d) => d.isDirectory())
          .map((d) => join(root, pattern.slice(0, -2), d.name))
      : [join(root, pattern)];
    for (const dir of dirs) if (existsSync(join(dir, "package.json"))) files.push(join(dir, "package.json"));
  }
  return files;
}

function dependenciesUpToDate() {
  const marker = join(root, "node_modules", ".modules.yaml");
  if (!existsSync(marker)) return false;
  const installedAt = statSync(marker).mtimeMs;
  return [join(root, "pnpm-lock.yaml"), ...workspacePackageJsons()].every((f) => statSync(f).mtimeMs < installedAt);
}

function installDependencies(pnpm) {
  if (dependenciesUpToDate()) {
    say("dependencies up to date");
    return;
  }
  say("installing dependencies (pnpm install --frozen-lockfile) ...");
  runOrFail("pnpm install", pnpm, ["install", "--frozen-lockfile"]);
  // pnpm leaves .modules.yaml alone when nothing changed; touch it so the next run skips.
  const now = new Date();
  utimesSync(join(root, "node_modules", ".modules.yaml"), now, now);
}

// c. build
function build(pnpm) {
  say("building (turbo, cached) ...");
  // Loose env mode so the pnpm setting above reaches the `pnpm run build` turbo starts.
  runOrFail("build", pnpm, ["exec", "turbo", "run", "build", "--output-logs=errors-only", "--env-mode=loose"]);
}

// d. nats-server
function ensureNatsServer() {
  const found = findBinary("nats-server", ["/usr/sbin", "/usr/bin"]);
  if (found) {
    say(`nats-server found at ${found}`);
    return;
  }
  if (process.env.NATS_URL) {
    say(`nats-server not installed; using NATS_URL=${process.env.NATS_URL}`);
    return;
  }
  const isRoot = process.getuid?.() === 0;
  if (!isRoot || !findBinary("apt-get")) {
    fail(
      "nats-server not found (looked on PATH, /usr/sbin and /usr/bin). Install it " +
        "(Debian/Ubuntu: sudo apt-get install nats-server; elsewhere: https://docs.nats.io/running-a-nats-service/introduction/installation) " +
        "or set NATS_URL to an existing server with JetStream enabled.",
    );
  }
  const extras = [];
  if (!findBinary("serf")) extras.push("serf");
  if (!findBinary("ip", ["/usr/sbin", "/sbin"])) extras.push("iproute2");
  // Debian's chromium runs the visualizer's browser test (skipped without it).
  if (!findBinary("chromium")) extras.push("chromium");
  say(`installing nats-server${extras.length ? ` (and ${extras.join(", ")})` : ""} with apt-get ...`);
  const aptEnv = { ...env, DEBIAN_FRONTEND: "noninteractive" };
  if (run("apt-get", ["update", "-qq"], { env: aptEnv }) !== 0) fail("apt-get update failed");
  const all = run("apt-get", ["install", "-y", "-qq", "nats-server", ...extras], { env: aptEnv });
  // serf, iproute2 and chromium are nice to have; if they broke the install, retry without them.
  if (all !== 0 && extras.length > 0) {
    say(`apt-get could not install ${extras.join(", ")}; installing nats-server alone ...`);
    if (run("apt-get", ["install", "-y", "-qq", "nats-server"], { env: aptEnv }) !== 0) fail("apt-get install nats-server failed");
  } else if (all !== 0) {
    fail("apt-get install nats-server failed");
  }
  if (!findBinary("nats-server", ["/usr/sbin", "/usr/bin"])) fail("nats-server was installed but cannot be found");
}

// e. the ClusterLabs fence agents and a BMC to fence through (the power-fencing tests): fence_ipmilan,
// OpenIPMI's ipmi_sim and ipmitool, from Debian's fence-agents, openipmi and ipmitool.
function ensureFencingTools() {
  const wanted = { "fence-agents": "fence_ipmilan", openipmi: "ipmi_sim", ipmitool: "ipmitool" };
  const missing = Object.entries(wanted).filter(([, tool]) => !findBinary(tool, ["/usr/sbin", "/usr/bin", "/sbin"])).map(([pkg]) => pkg);
  if (missing.length === 0) {
    say("fence agents, ipmi_sim and ipmitool found");
    return;
  }
  if (process.getuid?.() !== 0 || !findBinary("apt-get")) {
    say(`warning: ${missing.join(", ")} missing: the power-fencing tests and \`fenceline demo --scenario power-fence\` need them (Debian/Ubuntu: sudo apt-get install ${missing.join(" ")})`);
    return;
  }
  say(`installing ${missing.join(", ")} with apt-get ...`);
  const aptEnv = { ...env, DEBIAN_FRONTEND: "noninteractive" };
  if (run("apt-get", ["install", "-y", "-qq", ...missing], { env: aptEnv }) !== 0) {
    if (run("apt-get", ["update", "-qq"], { env: aptEnv }) !== 0) fail("apt-get update failed");
    if (run("apt-get", ["install", "-y", "-qq", ...missing], { env: aptEnv }) !== 0) fail(`apt-get install ${missing.join(" ")} failed`);
  }
}

const [major] = process.versions.node.split(".").map(Number);
if (major < 20) fail(`Node ${process.versions.node} is too old; Fenceline needs Node >= 20`);
const pnpm = ensurePnpm();
installDependencies(pnpm);
build(pnpm);
ensureNatsServer();
ensureFencingTools();
