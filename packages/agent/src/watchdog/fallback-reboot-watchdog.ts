import { execFile } from "node:child_process";
import type { Clock, Watchdog } from "@fenceline/contracts";
import type { Logger } from "pino";

export type RebootRunner = (command: readonly string[]) => Promise<{ ok: boolean; output: string }>;

export interface FallbackRebootWatchdogOptions {
  timeoutMs: number;
  /** argv, e.g. ["systemctl", "reboot", "-f"]. */
  rebootCommand: readonly string[];
  clock: Clock;
  log: Logger;
  /** Runs the reboot command; injectable for tests. */
  runReboot?: RebootRunner;
}

export interface FallbackRebootWatchdog extends Watchdog {
  /** Reboots right away, e.g. when a fenced agent is being stopped and its timer would die with it. */
  rebootNow(why: string): Promise<void>;
}

/**
 * A software watchdog for hosts without a watchdog device: a timer that runs the reboot command
 * when it is not fed in time. Weaker than a device: it dies with the process and cannot reset a
 * hung kernel, so the device is always preferred (see selectWatchdog). A failed reboot is retried
 * every timeout, loudly: until it succeeds the node is NOT fenced.
 */
export function createFallbackRebootWatchdog(options: FallbackRebootWatchdogOptions): FallbackRebootWatchdog {
  const { timeoutMs, rebootCommand, clock } = options;
  const log = options.log.child({ watchdog: "fallback-reboot" });
  const runReboot = options.runReboot ?? runCommand;
  let timer: unknown;
  let armed = false;

  const arm = () => {
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = clock.setTimeout(() => void expire(), timeoutMs);
  };
  const expire = async () => {
    timer = undefined;
    if (!armed) return;
    await reboot(`not fed for ${timeoutMs}ms`);
    if (armed) arm();
  };
  const reboot = async (why: string) => {
    log.fatal({ command: rebootCommand, why }, "rebooting this node");
    const result = await runReboot(rebootCommand).catch((err: Error) => ({ ok: false, output: err.message }));
    if (!result.ok) log.error({ command: rebootCommand, output: result.output }, "reboot command failed: this node is NOT fenced");
  };

  return {
    timeoutMs,
    start: async () => {
      armed = true;
      arm();
      log.info({ timeoutMs, rebootCommand }, "fallback watchdog armed (no watchdog device)");
    },
    feed: async () => {
      if (!armed) throw new Error("fallback watchdog is not armed");
      arm();
    },
    close: async () => {
      armed = false;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      log.info("fallback watchdog disarmed");
    },
    rebootNow: (why) => reboot(why),
  };
}

const runCommand: RebootRunner = ([file, ...args]) =>
  new Promise((resolve) => {
    if (!file) return resolve({ ok: false, output: "empty reboot command" });
    execFile(file, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ ok: !err, output: `${stdout}${stderr}${err ? err.message : ""}`.trim() });
    });
  });
