import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ToolSpec } from "./catalog.js";
import { cacheRoot, toolDir } from "./cache.js";
import { ToolchainError, type ToolchainStep } from "./errors.js";
import { withLock } from "./lock.js";

export type Progress = (line: string) => void;

/** Progress lines on stderr, as every build prints them. */
export const stderrProgress: Progress = (line) => process.stderr.write(`fenceline toolchain: ${line}\n`);

/** The repository's `tools/` folder, where the Go modules for k8s.io/kubernetes and etcd live. */
export const GO_MODULES_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "tools");

export const formatSeconds = (ms: number) =>
  ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;

type RunResult = { code: number | null; output: string };

/**
 * Runs a go command. With `-v`, go prints each package it compiles: counting them gives a
 * progress line every 15 s on long builds (the control plane compiles ~3,000 packages).
 */
function runGo(args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; progress: Progress; what: string }): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn("go", args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let packages = 0;
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      output = (output + text).slice(-64_000);
      packages += text.split("\n").filter((l) => l.length > 0 && !l.startsWith("go: ") && !l.startsWith("#")).length;
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    const started = Date.now();
    const ticker = setInterval(
      () => options.progress(`${options.what}: ${formatSeconds(Date.now() - started)}, ${packages} packages so far`),
      15_000,
    );
    child.on("error", (err) => {
      clearInterval(ticker);
      resolve({ code: null, output: err.message });
    });
    child.on("close", (code) => {
      clearInterval(ticker);
      resolve({ code, output });
    });
  });
}

function failIf(tool: ToolSpec, step: ToolchainStep, result: RunResult, command: string): void {
  if (result.code === 0) return;
  const tail = result.output.trim().split("\n").slice(-15).join("\n");
  throw new ToolchainError(tool.name, step, `\`${command}\` exited with ${result.code ?? "an error starting"}\n${tail}`);
}

/** Builds one tool into a fresh directory next to its final place, then renames it into place. */
async function build(tool: ToolSpec, progress: Progress): Promise<void> {
  const target = toolDir(tool);
  const started = Date.now();
  const staging = await mkdtemp(`${target}.building-`);
  const env: NodeJS.ProcessEnv = { ...process.env, ...tool.env, GOFLAGS: "-trimpath", GOTOOLCHAIN: process.env.GOTOOLCHAIN ?? "local" };
  const ldflags = ["-s", "-w", ...(tool.ldflags ? [tool.ldflags] : [])].join(" ");
  try {
    if (tool.source === "install") {
      progress(`building ${tool.name} ${tool.version} (go install ${tool.package}@${tool.version}) ...`);
      const args = ["install", "-v", `-ldflags=${ldflags}`, `${tool.package}@${tool.version}`];
      const scratch = await mkdtemp(join(cacheRoot(), "go-"));
      try {
        const result = await runGo(args, { cwd: scratch, env: { ...env, GOBIN: staging }, progress, what: `building ${tool.name}` });
        failIf(tool, "install", result, `go ${args.join(" ")}`);
      } finally {
        await rm(scratch, { recursive: true, force: true });
      }
    } else {
      const cwd = join(GO_MODULES_DIR, tool.module);
      if (!existsSync(join(cwd, "go.mod"))) throw new ToolchainError(tool.name, "download", `the Go module ${cwd} is missing`);
      progress(`downloading the modules of ${tool.name} ${tool.version} (go mod download in tools/${tool.module}) ...`);
      const download = await runGo(["mod", "download"], { cwd, env, progress, what: `downloading ${tool.name}` });
      failIf(tool, "download", download, `go mod download (in ${cwd})`);
      progress(
        `compiling ${tool.name} ${tool.version} (${tool.binaries.join(", ")}); a cold build of the Kubernetes control plane takes 10–20 min on 2 cores ...`,
      );
      const args = ["build", "-v", `-ldflags=${ldflags}`, "-o", `${staging}/`, ...tool.packages];
      const result = await runGo(args, { cwd, env, progress, what: `compiling ${tool.name}` });
      failIf(tool, "compile", result, `go ${args.join(" ")} (in ${cwd})`);
    }
    for (const binary of tool.binaries) {
      if (!existsSync(join(staging, binary))) throw new ToolchainError(tool.name, "install", `the build left no ${binary} in ${staging}`);
    }
    const tookMs = Date.now() - started;
    await placeInCache(staging, target, { tool: tool.name, version: tool.version, builtAt: new Date().toISOString(), tookMs });
    progress(`built ${tool.name} ${tool.version} in ${formatSeconds(tookMs)} into ${target}`);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
}

function haveGo(): Promise<boolean> {
  return runGo(["version"], { cwd: process.cwd(), env: process.env, progress: () => {}, what: "go version" }).then((r) => r.code === 0);
}

/**
 * The last step of an install: `staged` (a directory next to `target`) with its `built.json`
 * record becomes `target`, replacing what was there.
 */
export async function placeInCache(staged: string, target: string, record: object): Promise<void> {
  await writeFile(join(staged, "built.json"), `${JSON.stringify(record)}\n`);
  await rm(target, { recursive: true, force: true });
  await rename(staged, target);
}

/**
 * Runs `install` (which fills `target`) unless `ready()`, asked again once the cache's lock `key`
 * is held: test workers and processes started at once install it once, the others wait.
 */
export async function installOnce(
  key: string,
  target: string,
  ready: () => boolean,
  waiting: (ownerPid: number) => void,
  install: () => Promise<void>,
): Promise<void> {
  await mkdir(join(cacheRoot(), "locks"), { recursive: true });
  await mkdir(dirname(target), { recursive: true });
  await withLock(join(cacheRoot(), "locks", key), waiting, async () => {
    if (!ready()) await install();
  });
}

/** Returns the directory holding the tool's binaries, building it first when it is not cached. */
export async function ensureToolDir(tool: ToolSpec, progress: Progress): Promise<string> {
  const target = toolDir(tool);
  const ready = () => tool.binaries.every((b) => existsSync(join(target, b)));
  if (ready()) return target;
  if (!(await haveGo())) {
    throw new ToolchainError(
      tool.name,
      "find-go",
      `\`go\` is not on PATH; Fenceline builds ${tool.name} ${tool.version} from the Go module proxy and needs Go ≥ 1.26 (https://go.dev/doc/install)`,
    );
  }
  await installOnce(
    `${tool.name}-${tool.version}`,
    target,
    ready,
    (pid) => progress(`waiting for process ${pid}, which is building ${tool.name} ${tool.version} ...`),
    () => build(tool, progress),
  );
  return target;
}
