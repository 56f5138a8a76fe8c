import { expect } from "vitest";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CLI = join(ROOT, "packages", "cli", "dist", "bin.js");

export type CliResult = { code: number | null; stdout: string; stderr: string };

/** Runs the built `fenceline` CLI as a user would (after `npm test` built it), on this Node.js unless given another. */
export function runCli(
  args: string[],
  options: {
    env?: Record<string, string>;
    timeoutMs?: number;
    /** Another node binary, and its flags. */
    node?: string;
    nodeFlags?: string[];
  } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(options.node ?? process.execPath, [...(options.nodeFlags ?? []), CLI, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`fenceline ${args.join(" ")} timed out\n${stderr.slice(-2000)}`));
    }, options.timeoutMs ?? 60_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * What `--json` promises: stdout is exactly one JSON document (anything for people — tables,
 * progress — went to stderr). Returns it parsed.
 */
export function oneJsonDocument<T = unknown>(result: CliResult): T {
  expect(result.stdout.trim(), `stdout is empty; stderr:\n${result.stderr.slice(-2000)}`).not.toBe("");
  try {
    return JSON.parse(result.stdout) as T;
  } catch (err) {
    throw new Error(`stdout is not one JSON document (${(err as Error).message}):\n${result.stdout.slice(0, 2000)}`);
  }
}
