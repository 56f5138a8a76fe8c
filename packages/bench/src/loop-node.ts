import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { UsageError } from "@fenceline/command-line";
import { IMAGE_NODE_VERSION, ensureNodeRuntime } from "@fenceline/toolchain";

/** The Node.js a benchmark's loop processes run on. */
export type LoopNode = {
  /** The `node` binary. */
  path: string;
  /** What it reports (`v24.22.3`). */
  version: string;
  /** image: the engine image's (deploy/Dockerfile); current: the one running the benchmark; path: given. */
  source: "image" | "current" | "path";
};

/** The Node.js running this process. */
export const currentLoopNode = (): LoopNode => ({ path: process.execPath, version: process.version, source: "current" });

/**
 * `--node image|current|PATH`. The default is the engine image's Node.js, fetched on first use:
 * the engine runs on it in production, and the deciding path's cost differs between V8 versions
 * far more than the writes' (docs/scale.md, "Stop 28").
 */
export async function resolveLoopNode(value: string | undefined, usage: string): Promise<LoopNode> {
  const choice = value ?? "image";
  if (choice === "current") return currentLoopNode();
  if (choice === "image") {
    const path = await ensureNodeRuntime(IMAGE_NODE_VERSION);
    return { path, version: `v${IMAGE_NODE_VERSION}`, source: "image" };
  }
  const path = resolve(choice);
  if (!existsSync(path))
    throw new UsageError(`--node must be image, current or the path of a node binary; ${path} does not exist\n\n${usage}`);
  const r = spawnSync(path, ["--version"], { encoding: "utf8", timeout: 10_000 });
  const version = (r.stdout ?? "").trim().split("\n")[0]!;
  if (r.status !== 0 || !/^v\d+\.\d+\.\d+/.test(version))
    throw new UsageError(
      `--node ${path} is not a node binary: \`${path} --version\` ${r.error ? `failed (${r.error.message})` : `printed "${version}"`}\n\n${usage}`,
    );
  return { path, version, source: "path" };
}

export function describeLoopNode(node: LoopNode): string {
  const where =
    node.source === "image"
      ? "the engine image's (deploy/Dockerfile)"
      : node.source === "current"
        ? "the one running this command"
        : node.path;
  const other = node.source === "image" ? `; --node current for ${process.version}` : "";
  return `${node.version}, ${where}${other}`;
}
