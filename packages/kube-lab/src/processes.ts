import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, readFileSync, writeFileSync } from "node:fs";

/** One component the lab started: its log, its exit, and how to stop it. */
export type LabProcess = {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  running(): boolean;
  /** The last lines it wrote (stdout and stderr), for error messages. */
  tail(lines?: number): string;
  /** Resolves when it has exited (with its code or signal). */
  readonly exited: Promise<string>;
  /** SIGTERM to its process group, SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
};

const live = new Set<LabProcess>();
let exitHooked = false;

/**
 * Starts a binary in its own process group (so a stop reaches anything it forks, and a Ctrl-C
 * in the terminal reaches the test runner first), appending its output to `logFile`.
 */
export function startProcess(name: string, binary: string, args: string[], logFile: string): LabProcess {
  const log = createWriteStream(logFile, { flags: "a" });
  const child: ChildProcess = spawn(binary, args, {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
    env: { ...process.env, GOMAXPROCS: process.env.GOMAXPROCS ?? "2" },
  });
  let recent = "";
  const onData = (chunk: Buffer) => {
    log.write(chunk);
    recent = (recent + chunk.toString()).slice(-16_000);
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  let running = child.pid !== undefined;
  const exited = new Promise<string>((resolve) => {
    child.once("error", (err) => {
      running = false;
      recent += `\n${err.message}`;
      resolve(`failed to start: ${err.message}`);
    });
    child.once("exit", (code, signal) => {
      running = false;
      resolve(signal ? `killed by ${signal}` : `exited with ${code}`);
    });
  }).finally(() => {
    live.delete(proc);
    log.end();
  });
  const signalGroup = (signal: NodeJS.Signals) => {
    if (!running || child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      child.kill(signal);
    }
  };
  const proc: LabProcess = {
    name,
    pid: child.pid ?? -1,
    logFile,
    running: () => running,
    tail: (lines = 20) => recent.trimEnd().split("\n").slice(-lines).join("\n"),
    exited,
    async stop(graceMs = 5_000) {
      if (!running) return void (await exited);
      signalGroup("SIGTERM");
      const timer = setTimeout(() => signalGroup("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  live.add(proc);
  if (!exitHooked) {
    exitHooked = true;
    // A test process that exits without stopping the lab (process.exit, an uncaught error).
    process.once("exit", () => {
      for (const p of live) {
        try {
          process.kill(-p.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    });
  }
  return proc;
}

/**
 * The reaper: a small detached node process that outlives us. Every half second it checks
 * whether the process that started the lab still exists; once it does not (killed with
 * SIGKILL, a crashed test runner), it kills every process group listed in `pidFile` whose
 * command line is still the binary we started (not a reused pid), removes `dir` and exits.
 */
const REAPER = `
const fs = require("node:fs");
const [parent, pidFile, dir] = process.argv.slice(1);
const cmdline = (pid) => { try { return fs.readFileSync("/proc/" + pid + "/cmdline", "utf8").split("\\0")[0]; } catch { return ""; } };
const reap = () => {
  let entries = [];
  try { entries = JSON.parse(fs.readFileSync(pidFile, "utf8")); } catch {}
  for (const { pid, binary } of entries) {
    if (cmdline(pid) !== binary) continue;
    try { process.kill(-pid, "SIGKILL"); } catch { try { process.kill(pid, "SIGKILL"); } catch {} }
  }
  try { fs.rmSync(dir, { recursive: true, force: true }); } catch {}
  process.exit(0);
};
setInterval(() => {
  try { process.kill(Number(parent), 0); } catch (err) { if (err.code === "ESRCH") reap(); }
}, 500);
`;

export type Reaper = {
  /** Records a process the reaper must kill if we die. */
  watch(pid: number, binary: string): void;
  /** We stopped everything ourselves: the reaper can go. */
  dismiss(): void;
};

export function startReaper(pidFile: string, dir: string): Reaper {
  const entries: Array<{ pid: number; binary: string }> = [];
  writeFileSync(pidFile, "[]");
  const child = spawn(process.execPath, ["-e", REAPER, String(process.pid), pidFile, dir], { stdio: "ignore", detached: true });
  child.unref();
  return {
    watch(pid, binary) {
      entries.push({ pid, binary });
      writeFileSync(pidFile, JSON.stringify(entries));
    },
    dismiss() {
      try {
        if (child.pid !== undefined) process.kill(child.pid, "SIGTERM");
      } catch {
        // gone already
      }
    },
  };
}

export { freePort } from "@fenceline/toolchain";

/** Whether a log says the component could not bind its port (picked free, taken since). */
export function lostPortRace(logFile: string): boolean {
  try {
    return /address already in use/.test(readFileSync(logFile, "utf8"));
  } catch {
    return false;
  }
}
