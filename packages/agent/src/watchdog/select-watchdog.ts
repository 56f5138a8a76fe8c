import { promises as fs } from "node:fs";
import type { Clock, Watchdog } from "@fenceline/contracts";
import type { Logger } from "pino";
import { createFallbackRebootWatchdog, type FallbackRebootWatchdog } from "./fallback-reboot-watchdog.js";
import { createLinuxWatchdog } from "./linux-watchdog.js";

export interface WatchdogSelection {
  path: string;
  timeoutMs: number;
  /** Used only when the device is missing; null forbids the fallback. */
  fallbackRebootCommand: readonly string[] | null;
  clock: Clock;
  log: Logger;
}

export type SelectedWatchdog =
  | { kind: "device"; watchdog: Watchdog }
  | { kind: "fallback"; watchdog: FallbackRebootWatchdog };

/** The device when it exists, else the fallback reboot timer; says which in the log. */
export async function selectWatchdog(config: WatchdogSelection): Promise<SelectedWatchdog> {
  const { path, timeoutMs, fallbackRebootCommand, clock, log } = config;
  const exists = await fs.stat(path).then(
    () => true,
    () => false,
  );
  if (exists) {
    log.info({ path, timeoutMs }, "using the watchdog device");
    return { kind: "device", watchdog: createLinuxWatchdog({ path, timeoutMs, log }) };
  }
  if (!fallbackRebootCommand || fallbackRebootCommand.length === 0) {
    throw new Error(`no watchdog device at ${path} and no fallback reboot command configured (load one, e.g. modprobe softdog soft_margin=${Math.ceil(timeoutMs / 1000)})`);
  }
  log.warn({ path, timeoutMs, rebootCommand: fallbackRebootCommand }, "no watchdog device: using the fallback reboot timer");
  return { kind: "fallback", watchdog: createFallbackRebootWatchdog({ timeoutMs, rebootCommand: fallbackRebootCommand, clock, log }) };
}
