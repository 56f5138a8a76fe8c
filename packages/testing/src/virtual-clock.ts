import type { Clock } from "@fenceline/contracts";

interface Timer {
  readonly id: number;
  readonly dueAt: number;
  readonly fn: () => void;
}

/** Lets every queued promise continuation and I/O callback run (a few macrotask turns). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}

/**
 * Deterministic time for the simulator and the tests: nothing happens until `advance`,
 * `advanceSettling` or `runUntilIdle` moves time forward. Due callbacks fire in due-time order, ties in scheduling order, and a callback
 * may schedule more (a callback due within the window being advanced fires in the same call).
 * An exception thrown by a callback propagates out of `advance`, with the clock left at that
 * callback's due time.
 */
export class VirtualClock implements Clock {
  #now: number;
  #nextId = 1;
  /** Binary min-heap ordered by (dueAt, id); cancelled timers are dropped lazily when popped. */
  readonly #heap: Timer[] = [];
  readonly #live = new Set<number>();

  constructor(startAt = 0) {
    this.#now = startAt;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): number {
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    const timer: Timer = { id: this.#nextId++, dueAt: this.#now + delay, fn };
    this.#live.add(timer.id);
    this.#push(timer);
    return timer.id;
  }

  clearTimeout(handle: unknown): void {
    if (typeof handle === "number") this.#live.delete(handle);
  }

  /** How many callbacks are scheduled and not yet fired or cancelled. */
  get pendingTimers(): number {
    return this.#live.size;
  }

  /** When the next pending callback is due, or undefined when none is. */
  nextDueAt(): number | undefined {
    return this.#peekLive()?.dueAt;
  }

  /** Moves time forward by `ms`, firing every callback due on the way; returns how many fired. */
  advance(ms: number): number {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`advance: ms must be a finite number >= 0, got ${ms}`);
    return this.advanceTo(this.#now + ms);
  }

  /**
   * `advance` for code that awaits between timers (the agent and its ports): lets promises
   * settle before the first due callback, after each one and at the end, so what a callback
   * starts has run before the next one fires. Returns how many fired.
   */
  async advanceSettling(ms: number): Promise<number> {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`advanceSettling: ms must be a finite number >= 0, got ${ms}`);
    const target = this.#now + ms;
    let fired = 0;
    await settle();
    for (let timer = this.#peekLive(); timer !== undefined && timer.dueAt <= target; timer = this.#peekLive()) {
      this.#pop();
      this.#live.delete(timer.id);
      this.#now = timer.dueAt;
      fired++;
      timer.fn();
      await settle();
    }
    this.#now = target;
    await settle();
    return fired;
  }

  /** Moves time forward to `time` (never backwards), firing every callback due on the way. */
  advanceTo(time: number): number {
    if (time < this.#now) throw new RangeError(`advanceTo: ${time} is before now (${this.#now})`);
    let fired = 0;
    for (let timer = this.#peekLive(); timer !== undefined && timer.dueAt <= time; timer = this.#peekLive()) {
      this.#pop();
      this.#live.delete(timer.id);
      this.#now = timer.dueAt;
      fired++;
      timer.fn();
    }
    this.#now = time;
    return fired;
  }

  /**
   * Fires callbacks one due time after another until none is pending, but never beyond
   * `limitMs` from now (periodic work such as heartbeats never goes idle). Returns true when
   * it went idle; the clock then stands at the last fired callback's due time, otherwise at
   * the limit.
   */
  runUntilIdle(limitMs: number): boolean {
    if (!Number.isFinite(limitMs) || limitMs < 0) {
      throw new RangeError(`runUntilIdle: limitMs must be a finite number >= 0, got ${limitMs}`);
    }
    const limit = this.#now + limitMs;
    for (let timer = this.#peekLive(); timer !== undefined; timer = this.#peekLive()) {
      if (timer.dueAt > limit) {
        this.#now = limit;
        return false;
      }
      this.advanceTo(timer.dueAt);
    }
    return true;
  }

  #peekLive(): Timer | undefined {
    let top = this.#heap[0];
    while (top !== undefined && !this.#live.has(top.id)) {
      this.#pop();
      top = this.#heap[0];
    }
    return top;
  }

  #push(timer: Timer): void {
    const heap = this.#heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && before(heap[left]!, heap[smallest]!)) smallest = left;
      if (right < heap.length && before(heap[right]!, heap[smallest]!)) smallest = right;
      if (smallest === i) return;
      [heap[i], heap[smallest]] = [heap[smallest]!, heap[i]!];
      i = smallest;
    }
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.id < b.id);
}
