import { createEvent, type Clock, type NodeEvent } from "@fenceline/contracts";

export const timerEventId = (node: string, timer: string, due: number) => `timer:${node}:${timer}:${due}`;

/**
 * Turns the deadlines the machines asked for into `timer.fired` events. It holds only what is
 * pending now (`track` replaces a node's deadlines after every fold); the id of a fired timer
 * is derived from (node, timer, due), so firing twice is deduplicated by the event stream.
 */
export function createTimerService(options: {
  clock: Clock;
  publish: (event: NodeEvent) => Promise<void>;
  tickMs?: number;
  onError?: (err: unknown) => void;
}) {
  const { clock, publish } = options;
  const tickMs = options.tickMs ?? 100;
  /** Per node, its deadlines as the machine's context holds them (never changed in place). */
  const pending = new Map<string, Readonly<Record<string, number>>>();
  const fired = new Set<string>();
  let handle: unknown = null;
  let running = false;

  async function tick() {
    const now = clock.now();
    for (const [node, timers] of pending) {
      for (const [timer, due] of Object.entries(timers)) {
        const id = timerEventId(node, timer, due);
        if (due > now || fired.has(id)) continue;
        fired.add(id);
        try {
          await publish(createEvent("timer.fired", { id, node, at: Math.max(now, due), source: "timer", data: { timer, due } }));
        } catch (err) {
          fired.delete(id);
          options.onError?.(err);
        }
      }
    }
  }

  function schedule() {
    if (!running) return;
    handle = clock.setTimeout(async () => {
      await tick();
      schedule();
    }, tickMs);
  }

  return {
    track(node: string, timers: Readonly<Record<string, number>>) {
      const before = pending.get(node);
      if (before === timers) return;
      if (before) for (const timer in before) if (timers[timer] !== before[timer]) fired.delete(timerEventId(node, timer, before[timer]!));
      let any = false;
      for (const _ in timers) {
        any = true;
        break;
      }
      if (any) pending.set(node, timers);
      else pending.delete(node);
    },
    /** Deadlines still pending, soonest first. */
    pending(): Array<{ node: string; timer: string; due: number }> {
      const all = [...pending].flatMap(([node, timers]) => Object.entries(timers).map(([timer, due]) => ({ node, timer, due })));
      return all.sort((a, b) => a.due - b.due || a.node.localeCompare(b.node));
    },
    tick,
    start() {
      running = true;
      schedule();
    },
    stop() {
      running = false;
      if (handle !== null) clock.clearTimeout(handle);
    },
  };
}
export type TimerService = ReturnType<typeof createTimerService>;
