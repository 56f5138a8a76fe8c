import type { Clock } from "@fenceline/contracts";

export interface FakeClock extends Clock {
  /** Moves time forward, running due timers in order and letting promises settle in between. */
  advance(ms: number): Promise<void>;
  pending(): number;
}

/** Let every queued promise continuation and I/O callback run (one macrotask turn, twice). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}

export function createFakeClock(start = 1_000_000): FakeClock {
  let now = start;
  let nextId = 1;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const nextDue = (limit: number) => {
    let best: [number, { at: number; fn: () => void }] | undefined;
    for (const entry of timers) if (entry[1].at <= limit && (!best || entry[1].at < best[1].at || (entry[1].at === best[1].at && entry[0] < best[0]))) best = entry;
    return best;
  };
  return {
    now: () => now,
    setTimeout: (fn, ms) => {
      const id = nextId++;
      timers.set(id, { at: now + Math.max(0, ms), fn });
      return id;
    },
    clearTimeout: (handle) => void timers.delete(handle as number),
    pending: () => timers.size,
    advance: async (ms) => {
      const target = now + ms;
      await settle();
      for (let due = nextDue(target); due; due = nextDue(target)) {
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
        await settle();
      }
      now = target;
      await settle();
    },
  };
}
