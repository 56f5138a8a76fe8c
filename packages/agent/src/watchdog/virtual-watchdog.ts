import type { Clock, Watchdog } from "@fenceline/contracts";

export interface VirtualWatchdogOptions {
  clock: Clock;
  timeoutMs: number;
  /** Called once when the watchdog expires: the simulator resets the node here. */
  onExpire?: (at: number) => void;
}

export interface VirtualWatchdog extends Watchdog {
  readonly armed: boolean;
  readonly feeds: number;
  readonly lastFedAt: number | undefined;
  /** When it expired (the node would have been reset), if it did. */
  readonly expiredAt: number | undefined;
  readonly magicClosed: boolean;
}

/** An in-memory watchdog on an injected clock, for the simulator and the tests. */
export function createVirtualWatchdog(options: VirtualWatchdogOptions): VirtualWatchdog {
  const { clock, timeoutMs } = options;
  let timer: unknown;
  let armed = false;
  let feeds = 0;
  let lastFedAt: number | undefined;
  let expiredAt: number | undefined;
  let magicClosed = false;

  const arm = () => {
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = clock.setTimeout(() => {
      timer = undefined;
      armed = false;
      expiredAt = clock.now();
      options.onExpire?.(expiredAt);
    }, timeoutMs);
  };

  return {
    timeoutMs,
    get armed() {
      return armed;
    },
    get feeds() {
      return feeds;
    },
    get lastFedAt() {
      return lastFedAt;
    },
    get expiredAt() {
      return expiredAt;
    },
    get magicClosed() {
      return magicClosed;
    },
    start: async () => {
      if (armed) return;
      armed = true;
      magicClosed = false;
      arm();
    },
    feed: async () => {
      if (!armed) throw new Error(expiredAt === undefined ? "virtual watchdog is not armed" : "virtual watchdog already expired");
      feeds++;
      lastFedAt = clock.now();
      arm();
    },
    close: async () => {
      if (!armed) return;
      armed = false;
      magicClosed = true;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
    },
  };
}
