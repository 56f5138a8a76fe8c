import { promises as fs } from "node:fs";
import type { Clock, Watchdog, WatchdogKind } from "@fenceline/contracts";
import type { Logger } from "pino";
import { createFallbackRebootWatchdog, type FallbackRebootWatchdog } from "./fallback-reboot-watchdog.js";
import { createLinuxWatchdog, sysfsDirOf } from "./linux-watchdog.js";

export interface WatchdogSelection {
  path: string;
  timeoutMs: number;
  /** Used only when the device is missing; null forbids the fallback. */
  fallbackRebootCommand: readonly string[] | null;
  /**
   * Where the driver publishes `identity` and `timeout`. Default: /sys/class/watchdog/watchdogN
   * for /dev/watchdogN (/dev/watchdog is watchdog0); none for a path outside /dev. Tests set it
   * to stand a plain file in for a device.
   */
  sysfsDir?: string;
  clock: Clock;
  log: Logger;
}

export type SelectedWatchdog =
  | { kind: "device"; watchdog: Watchdog; watchdogKind: WatchdogKind }
  | { kind: "fallback"; watchdog: FallbackRebootWatchdog; watchdogKind: "software" };

/** The identity the kernel's softdog driver reports. */
export const SOFTDOG_IDENTITY = "Software Watchdog";

/**
 * What resets this node when the device at `path` is not fed, for the contract: `softdog` when
 * the driver's identity says so (or cannot be read: the weaker guess), `hardware` for any other
 * driver, `none` for a path that is not a character device (a plain file resets nothing) unless
 * `sysfsDir` was given explicitly with an identity (the tests' stand-in for a device).
 */
export async function watchdogKindOf(path: string, sysfsDir: string | undefined, log: Logger): Promise<WatchdogKind> {
  const stat = await fs.stat(path).catch(() => undefined);
  const device = stat?.isCharacterDevice() === true;
  const dir = sysfsDir ?? (device ? sysfsDirOf(path) : undefined);
  const identity =
    dir === undefined
      ? undefined
      : await fs.readFile(`${dir}/identity`, "utf8").then(
          (t) => t.trim(),
          () => undefined,
        );
  if (!device && (sysfsDir === undefined || identity === undefined)) return "none";
  if (identity === undefined) {
    log.warn({ path, sysfsDir: dir }, "cannot read the watchdog driver's identity: reporting it as softdog");
    return "softdog";
  }
  return identity === SOFTDOG_IDENTITY ? "softdog" : "hardware";
}

/** The device when it exists, else the fallback reboot timer (when configured); says which in the log. */
export async function selectWatchdog(config: WatchdogSelection): Promise<SelectedWatchdog> {
  const { path, timeoutMs, fallbackRebootCommand, clock, log } = config;
  const exists = await fs.stat(path).then(
    () => true,
    () => false,
  );
  if (exists) {
    const sysfsDir = config.sysfsDir ?? sysfsDirOf(path);
    const watchdogKind = await watchdogKindOf(path, config.sysfsDir, log);
    if (watchdogKind === "none")
      log.warn({ path }, "the watchdog path is not a device: nothing resets this node, and the contract says so (kind none)");
    log.info({ path, timeoutMs, watchdogKind }, "using the watchdog device");
    return {
      kind: "device",
      watchdogKind,
      watchdog: createLinuxWatchdog({
        path,
        timeoutMs,
        log,
        ...(sysfsDir !== undefined ? { sysfsTimeoutPath: `${sysfsDir}/timeout` } : {}),
      }),
    };
  }
  if (!fallbackRebootCommand || fallbackRebootCommand.length === 0) {
    throw new Error(
      `no watchdog device at ${path} and no fallback reboot command configured (load one, e.g. modprobe softdog soft_margin=${Math.ceil(timeoutMs / 1000)})`,
    );
  }
  log.warn(
    { path, timeoutMs, rebootCommand: fallbackRebootCommand },
    "no watchdog device: using the fallback reboot timer (contract: software; the engine never assumes this node fenced by time)",
  );
  return {
    kind: "fallback",
    watchdogKind: "software",
    watchdog: createFallbackRebootWatchdog({ timeoutMs, rebootCommand: fallbackRebootCommand, clock, log }),
  };
}
