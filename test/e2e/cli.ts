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

export type RunningUp = {
  /** Ctrl-C, then waits for it to exit. */
  stop(): Promise<void>;
};

/**
 * Starts `fenceline up <args>` (the built CLI unless `entry` names another, e.g. the sources
 * through tsx) and waits for it to say it is up; fails with its stderr if it exits first or
 * takes longer than `timeoutMs`.
 */
export async function startUp(args: string[], options: { entry?: string[]; timeoutMs?: number } = {}): Promise<RunningUp> {
  const child = spawn(process.execPath, [...(options.entry ?? [CLI]), "up", ...args], {
    cwd: ROOT,
    env: { ...process.env, FENCELINE_LOG_LEVEL: "warn" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
    await exited;
  };
  const until = Date.now() + (options.timeoutMs ?? 30_000);
  while (!stderr.includes("up on")) {
    if (Date.now() > until || child.exitCode !== null) {
      await stop();
      throw new Error(`fenceline up did not start:\n${stderr.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { stop };
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
