import { existsSync } from "node:fs";
import { join } from "node:path";
import { TOOLS, toolOfBinary, type BinaryName, type ToolSpec } from "./catalog.js";
import { ensureToolDir, stderrProgress, type Progress } from "./build.js";
import { toolDir } from "./cache.js";
import { natsServerOnPath } from "./nats-version.js";

export { TOOLS, MIN_NATS_SERVER_VERSION, toolByName, toolOfBinary, type BinaryName, type ToolName, type ToolSpec } from "./catalog.js";
export { cacheRoot, toolDir } from "./cache.js";
export { GO_MODULES_DIR, type Progress } from "./build.js";
export { ToolchainError, type ToolchainStep } from "./errors.js";
export { IMAGE_NODE_VERSION, ensureNodeRuntime } from "./node-runtime.js";
export { natsServerOnPath, natsServerVersionOf, versionAtLeast } from "./nats-version.js";
export { freePort, freePorts } from "./free-port.js";

function specOf(binary: BinaryName): ToolSpec {
  const tool = toolOfBinary(binary);
  if (!tool) throw new Error(`unknown tool binary ${binary}; known: ${TOOLS.flatMap((t) => t.binaries).join(", ")}`);
  return tool;
}

/**
 * The path of a binary when it is available without building: for nats-server a recent enough
 * one on PATH wins, otherwise the cached build; null when it would have to be built.
 */
export function findBinary(binary: BinaryName): string | null {
  if (binary === "nats-server") {
    const onPath = natsServerOnPath();
    if (onPath) return onPath.binary;
  }
  const path = join(toolDir(specOf(binary)), binary);
  return existsSync(path) ? path : null;
}

/**
 * The path of a binary, building its tool from the Go module proxy on first use (progress on
 * stderr, or to `progress`). Concurrent callers share one build.
 */
export async function ensureBinary(binary: BinaryName, progress: Progress = stderrProgress): Promise<string> {
  const found = findBinary(binary);
  if (found) return found;
  const dir = await ensureToolDir(specOf(binary), progress);
  return join(dir, binary);
}
