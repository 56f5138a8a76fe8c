import type { Clock, Watchdog } from "@fenceline/contracts";

export type WatchdogState = "idle" | "armed" | "fired" | "closed";

export interface VirtualWatchdogOptions {
  clock: Clock;
  timeoutMs: number;
  /** Called once when the watchdog expires (at that time); the fleet simulator resets the node here. */
  onFire?: (at: number) => void;
  /** False simulates a node without a usable watchdog device: `start()` rejects. */
  available?: boolean;
}

/**
 * The one virtual watchdog (the simulator's fleet and the agent's tests): driven by the injected
 * clock, with `/dev/watchdog` semantics: once started it fires
 * unless fed within `timeoutMs`; `close()` (the magic close) disarms it. Feeding a watchdog that
 * is not armed does nothing, as the fleet simulator, not the watchdog, stops a reset node's agent.
 * Starting an armed watchdog feeds it; it can be started again after it fired or was closed
 * (the agent restarting after a reboot).
 */
export class VirtualWatchdog implements Watchdog {
  readonly timeoutMs: number;
  readonly #clock: Clock;
  readonly #onFire: (at: number) => void;
  readonly #available: boolean;
  #state: WatchdogState = "idle";
  #deadline = 0;
  #timer: unknown = undefined;
  #firedAt: number | undefined;
  #lastFedAt: number | undefined;
  #feeds = 0;

  constructor(options: VirtualWatchdogOptions) {
    if (!Number.isFinite(options.timeoutMs) || options.timeoutMs <= 0) {
      throw new RangeError(`watchdog timeoutMs must be > 0, got ${options.timeoutMs}`);
    }
    this.timeoutMs = options.timeoutMs;
    this.#clock = options.clock;
    this.#onFire = options.onFire ?? (() => {});
    this.#available = options.available ?? true;
  }

  get state(): WatchdogState {
    return this.#state;
  }

  /** When it last fired (kept across restarts), or undefined if it never did. */
  get firedAt(): number | undefined {
    return this.#firedAt;
  }

  get lastFedAt(): number | undefined {
    return this.#lastFedAt;
  }

  /** How many times `feed` kept it armed (starting it is not counted). */
  get feeds(): number {
    return this.#feeds;
  }

  async start(): Promise<void> {
    if (!this.#available) throw new Error("watchdog device not available");
    if (this.#state === "armed") {
      this.#feed();
      return;
    }
    this.#state = "armed";
    this.#feed();
    this.#schedule(this.timeoutMs);
  }

  async feed(): Promise<void> {
    if (this.#state !== "armed") return;
    this.#feeds++;
    this.#feed();
  }

  async close(): Promise<void> {
    if (this.#state !== "armed") return;
    this.#state = "closed";
    this.#cancel();
  }

  #feed(): void {
    const now = this.#clock.now();
    this.#lastFedAt = now;
    this.#deadline = now + this.timeoutMs;
  }

  // One timer per arming: when it fires early (the watchdog was fed since), it re-arms for the
  // new deadline, so frequent feeding schedules nothing.
  #schedule(ms: number): void {
    this.#timer = this.#clock.setTimeout(() => this.#check(), ms);
  }

  #check(): void {
    this.#timer = undefined;
    if (this.#state !== "armed") return;
    const now = this.#clock.now();
    if (now < this.#deadline) {
      this.#schedule(this.#deadline - now);
      return;
    }
    this.#state = "fired";
    this.#firedAt = now;
    this.#onFire(now);
  }

  #cancel(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
