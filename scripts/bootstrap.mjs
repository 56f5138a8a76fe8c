#!/usr/bin/env node
// Gets a fresh checkout ready on a machine that only has Node >= 20 and Go >= 1.26: pnpm,
// dependencies, build, the Go-built tools (`node scripts/bootstrap.mjs demo` only nats-server;
// `test`, the default, all of them and the Debian packages the tests drive). Plain Node, no
// dependencies: it runs before anything is installed. Progress and the output of every
// sub-command go to stderr; stdout stays clean for the command that follows.
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

// d. Debian packages the tests drive as real peers (fence agents, a BMC simulator, kubectl,
// chromium for the visualizer's browser test, serf, iproute2 for network namespaces).
const DEBIAN_PACKAGES = [
  { pkg: "fence-agents", binary: "fence_ipmilan" },
  { pkg: "openipmi", binary: "ipmi_sim" },
  { pkg: "ipmitool", binary: "ipmitool" },
  { pkg: "kubectl", binary: "kubectl" },
  { pkg: "chromium", binary: "chromium" },
  { pkg: "serf", binary: "serf" },
  { pkg: "iproute2", binary: "ip" },
];

function ensureDebianPackages() {
  const missing = DEBIAN_PACKAGES.filter(({ binary }) => !findBinary(binary, ["/usr/sbin", "/usr/bin", "/sbin"]));
  if (missing.length === 0) {
    say("Debian packages present (fence-agents, openipmi, ipmitool, kubectl, chromium, serf, iproute2)");
    return;
  }
  const names = missing.map((m) => m.pkg);
  if (process.getuid?.() !== 0 || !findBinary("apt-get")) {
    fail(
      `the tests need ${names.join(", ")} (missing: ${missing.map((m) => m.binary).join(", ")}); install them (Debian/Ubuntu: sudo apt-get install ${names.join(" ")})`,
    );
  }
  say(`installing ${names.join(", ")} with apt-get ...`);
  const aptEnv = { ...env, DEBIAN_FRONTEND: "noninteractive" };
  if (run("apt-get", ["update", "-qq"], { env: aptEnv }) !== 0) fail("apt-get update failed");
  runOrFail(`installing ${names.join(", ")}`, "apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...names]);
  const still = missing.filter(({ binary }) => !findBinary(binary, ["/usr/sbin", "/usr/bin", "/sbin"]));
  if (still.length > 0) fail(`apt-get installed ${names.join(", ")} but ${still.map((m) => m.binary).join(", ")} cannot be found`);
}

// e. Go-built tools (nats-server, natscli, etcd, the Kubernetes control plane, Helm, promtool):
// built from the Go module proxy on first use into ~/.cache/fenceline, reused afterwards.
const TOOLS_FOR = {
  demo: ["nats-server"],
  test: ["nats-server", "natscli", "etcd", "kubernetes", "helm", "promtool"],
};

function ensureGo() {
  const r = spawnSync("go", ["env", "GOVERSION"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], env });
  const version = r.status === 0 ? r.stdout.trim() : null;
  if (!version)
    fail(
      "Go is not on PATH; Fenceline builds nats-server and the other infrastructure from the Go module proxy and needs Go >= 1.26 (https://go.dev/doc/install)",
    );
  const [major, minor] = version.replace(/^go/, "").split(".").map(Number);
  if (major < 1 || (major === 1 && minor < 26)) fail(`${version} is too old; Fenceline needs Go >= 1.26`);
  say(`${version} found`);
}

function ensureTools(mode) {
  if (mode === "demo" && process.env.NATS_URL) {
    say(`using NATS_URL=${process.env.NATS_URL}; not building nats-server`);
    return;
  }
  ensureGo();
  const started = Date.now();
  runOrFail("building the Go tools", process.execPath, [
    join(root, "packages", "toolchain", "dist", "cli.js"),
    "ensure",
    ...TOOLS_FOR[mode],
  ]);
  say(`Go tools ready (${TOOLS_FOR[mode].join(", ")}) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

const mode = process.argv[2] ?? "test";
if (!(mode in TOOLS_FOR)) fail(`usage: node scripts/bootstrap.mjs [demo|test]`);
const [major] = process.versions.node.split(".").map(Number);
if (major < 20) fail(`Node ${process.versions.node} is too old; Fenceline needs Node >= 20`);
const pnpm = ensurePnpm();
installDependencies(pnpm);
build(pnpm);
if (mode === "test") ensureDebianPackages();
ensureTools(mode);
