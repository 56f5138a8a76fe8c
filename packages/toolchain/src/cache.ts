import { homedir } from "node:os";
import { join } from "node:path";
import type { ToolSpec } from "./catalog.js";

/**
 * Where built tools live: `$FENCELINE_CACHE`, else `$XDG_CACHE_HOME/fenceline`, else
 * `~/.cache/fenceline`. Outside the repository, so a fresh clone reuses what an earlier one built.
 */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.FENCELINE_CACHE) return env.FENCELINE_CACHE;
  return join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "fenceline");
}

/** The directory holding one tool version's binaries: `<cache>/bin/<name>-<version>/`. */
export function toolDir(tool: Pick<ToolSpec, "name" | "version">, env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheRoot(env), "bin", `${tool.name}-${tool.version}`);
}
