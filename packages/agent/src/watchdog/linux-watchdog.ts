import { constants, promises as fs } from "node:fs";
import { basename } from "node:path";
import type { Watchdog } from "@fenceline/contracts";
import type { Logger } from "pino";

export interface LinuxWatchdogOptions {
  /** The device; a plain (existing) file works too, which is what the tests use. */
  path?: string;
  /** Must match the device's own timeout, see below. */
  timeoutMs: number;
  log: Logger;
  /**
   * Where the kernel publishes the device timeout in seconds. Default for a device under /dev:
   * /sys/class/watchdog/<watchdogN>/timeout (/dev/watchdog is watchdog0); none otherwise.
   */
  sysfsTimeoutPath?: string;
}

export interface LinuxWatchdog extends Watchdog {
  readonly path: string;
}

const KEEP_ALIVE = Buffer.from("a");
const MAGIC_CLOSE = Buffer.from("V");

/**
 * The Linux watchdog API (Documentation/watchdog/watchdog-api.rst): opening the device arms it,
 * every write is a keep-alive, and writing "V" right before close disarms it (magic close).
 *
 * Node cannot issue ioctls, so WDIOC_SETTIMEOUT is out of reach: the device timeout is set by
 * its kernel module (e.g. `modprobe softdog soft_margin=10`, or the driver's `timeout=`) and must
 * match `timeoutMs`, which the safe time is computed from. When sysfs shows the device timeout,
 * start() refuses a mismatch that would make fencing unsafe (longer) or reset healthy nodes
 * (shorter than two feed periods).
 */
export function createLinuxWatchdog(options: LinuxWatchdogOptions): LinuxWatchdog {
  const path = options.path ?? "/dev/watchdog";
  const { timeoutMs } = options;
  const log = options.log.child({ watchdog: path });
  let handle: fs.FileHandle | undefined;
  // Writes are serialized so a feed can never land after the magic close.
  let queue: Promise<unknown> = Promise.resolve();
  const serialized = <T>(op: () => Promise<T>): Promise<T> => {
    const next = queue.then(op, op);
    queue = next.catch(() => undefined);
    return next;
  };

  return {
    path,
    timeoutMs,
    start: () =>
      serialized(async () => {
        if (handle) return;
        const sysfsPath = options.sysfsTimeoutPath ?? sysfsTimeoutPathOf(path);
        if (sysfsPath) await checkDeviceTimeout(sysfsPath, timeoutMs, log);
        // O_WRONLY without O_CREAT: a missing device must fail, not become a regular file.
        handle = await fs.open(path, constants.O_WRONLY).catch((err: NodeJS.ErrnoException) => {
          const hint = err.code === "EBUSY" ? " (another process holds it open)" : "";
          throw new Error(`cannot open watchdog ${path}: ${err.code ?? err.message}${hint}`);
        });
        const stat = await handle.stat();
        if (!stat.isCharacterDevice()) log.warn("watchdog path is not a character device: nothing will reset this node");
        log.info({ timeoutMs }, "watchdog armed");
      }),
    feed: () =>
      serialized(async () => {
        if (!handle) throw new Error(`watchdog ${path} is not armed`);
        await handle.write(KEEP_ALIVE);
      }),
    close: () =>
      serialized(async () => {
        if (!handle) return;
        const open = handle;
        handle = undefined;
        try {
          await open.write(MAGIC_CLOSE);
        } finally {
          await open.close();
        }
        log.info("watchdog disarmed (magic close)");
      }),
  };
}

/** The sysfs directory of a watchdog device path (/dev/watchdog is watchdog0), or undefined outside /dev. */
export function sysfsDirOf(devicePath: string): string | undefined {
  if (!devicePath.startsWith("/dev/")) return undefined;
  const name = basename(devicePath);
  return `/sys/class/watchdog/${name === "watchdog" ? "watchdog0" : name}`;
}

function sysfsTimeoutPathOf(devicePath: string): string | undefined {
  const dir = sysfsDirOf(devicePath);
  return dir === undefined ? undefined : `${dir}/timeout`;
}

async function checkDeviceTimeout(sysfsPath: string, timeoutMs: number, log: Logger): Promise<void> {
  let text: string;
  try {
    text = await fs.readFile(sysfsPath, "utf8");
  } catch {
    log.warn({ sysfsPath, timeoutMs }, "cannot read the device timeout; make sure the driver is configured with this timeout");
    return;
  }
  const deviceMs = Number(text.trim()) * 1000;
  if (!Number.isFinite(deviceMs) || deviceMs <= 0) return;
  if (deviceMs > timeoutMs) {
    throw new Error(
      `watchdog device timeout ${deviceMs}ms is longer than the configured ${timeoutMs}ms: the safe time would be too short (set the driver's timeout, e.g. softdog soft_margin=${Math.ceil(timeoutMs / 1000)})`,
    );
  }
  if (deviceMs < (2 * timeoutMs) / 3) {
    throw new Error(
      `watchdog device timeout ${deviceMs}ms is too short for the configured ${timeoutMs}ms: feeding every ${Math.round(timeoutMs / 3)}ms would risk resetting a healthy node`,
    );
  }
  log.info({ deviceTimeoutMs: deviceMs }, "watchdog device timeout checked");
}
