import { describe, expect, it } from "vitest";
import type { Clock, NodeEvent } from "@fenceline/contracts";
import { createTimerService, timerEventId } from "../src/index.js";

/** A clock that moves only when told; `advance` runs due callbacks and lets their async work settle. */
function fakeClock(start = 0) {
  let now = start;
  let nextId = 1;
  const timers = new Map<number, { due: number; fn: () => void }>();
  const settle = async () => {
    for (let i = 0; i < 20; i++) await Promise.resolve();
  };
  const clock: Clock & { advance(ms: number): Promise<void>; set(t: number): void; readonly scheduled: number } = {
    now: () => now,
    setTimeout(fn, ms) {
      const id = nextId++;
      timers.set(id, { due: now + ms, fn });
      return id;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
    async advance(ms) {
      const target = now + ms;
      for (;;) {
        const due = [...timers].filter(([, t]) => t.due <= target).sort((a, b) => a[1].due - b[1].due || a[0] - b[0])[0];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].due;
        due[1].fn();
        await settle();
      }
      now = target;
    },
    set(t) {
      now = t;
    },
    get scheduled() {
      return timers.size;
    },
  };
  return clock;
}

function setup(options: { failures?: number } = {}) {
  const clock = fakeClock(1_000);
  const published: NodeEvent[] = [];
  const errors: unknown[] = [];
  let failures = options.failures ?? 0;
  const service = createTimerService({
    clock,
    tickMs: 100,
    publish: async (event) => {
      if (failures > 0) {
        failures -= 1;
        throw new Error("nats: timeout");
      }
      published.push(event);
    },
    onError: (err) => errors.push(err),
  });
  return { clock, service, published, errors, fail: (n: number) => (failures = n) };
}

describe("timer service", () => {
  it("publishes a due timer once as timer.fired with id timer:<node>:<name>:<due>", async () => {
    const { clock, service, published } = setup();
    service.track("n1", { suspect: 3_000, "fence-timeout": 600_000 });
    service.track("n2", { "safe-time": 2_000 });
    expect(service.pending()).toEqual([
      { node: "n2", timer: "safe-time", due: 2_000 },
      { node: "n1", timer: "suspect", due: 3_000 },
      { node: "n1", timer: "fence-timeout", due: 600_000 },
    ]);

    clock.set(1_999);
    await service.tick();
    expect(published).toEqual([]);

    clock.set(2_000);
    await service.tick();
    expect(published).toEqual([
      {
        v: 1,
        type: "timer.fired",
        id: "timer:n2:safe-time:2000",
        node: "n2",
        at: 2_000,
        source: "timer",
        data: { timer: "safe-time", due: 2_000 },
      },
    ]);

    // Late ticks: fired at the tick's time, still with its own due; never twice.
    clock.set(3_500);
    await service.tick();
    await service.tick();
    expect(published.map((e) => e.id)).toEqual(["timer:n2:safe-time:2000", "timer:n1:suspect:3000"]);
    expect(published[1]).toMatchObject({ at: 3_500, data: { timer: "suspect", due: 3_000 } });
    expect(timerEventId("n1", "suspect", 3_000)).toBe("timer:n1:suspect:3000");
    // Still pending until the engine's fold consumes it and tracks the node again.
    expect(service.pending().map((p) => p.timer)).toEqual(["safe-time", "suspect", "fence-timeout"]);
    service.track("n1", { "fence-timeout": 600_000 });
    service.track("n2", {});
    expect(service.pending()).toEqual([{ node: "n1", timer: "fence-timeout", due: 600_000 }]);
    await service.tick();
    expect(published).toHaveLength(2);
  });

  it("runs on the clock once started, and stops", async () => {
    const { clock, service, published } = setup();
    service.track("n1", { suspect: 1_250 });
    service.start();
    expect(clock.scheduled).toBe(1);
    await clock.advance(200); // ticks at 1100 and 1200
    expect(published).toEqual([]);
    await clock.advance(100); // tick at 1300
    expect(published.map((e) => [e.id, e.at])).toEqual([["timer:n1:suspect:1250", 1_300]]);
    await clock.advance(1_000);
    expect(published).toHaveLength(1);

    service.stop();
    expect(clock.scheduled).toBe(0);
    service.track("n1", { suspect: 5_000 });
    await clock.advance(10_000);
    expect(published).toHaveLength(1);
  });

  it("does not fire a timer that was replaced or cleared before it was due", async () => {
    const { clock, service, published } = setup();
    service.track("n1", { suspect: 2_000, "guard-retry": 2_500 });
    service.track("n2", { "safe-time": 2_000 });
    // n1's suspect timer moved to 4000 and its guard retry went away; n2 has nothing pending.
    service.track("n1", { suspect: 4_000 });
    service.track("n2", {});
    clock.set(3_000);
    await service.tick();
    expect(published).toEqual([]);
    expect(service.pending()).toEqual([{ node: "n1", timer: "suspect", due: 4_000 }]);
    clock.set(4_000);
    await service.tick();
    expect(published.map((e) => e.id)).toEqual(["timer:n1:suspect:4000"]);
  });

  it("fires a timer re-armed with a new due time after the old one fired", async () => {
    const { clock, service, published } = setup();
    service.track("n1", { "guard-retry": 2_000 });
    clock.set(2_000);
    await service.tick();
    // The fold consumed it and asked again for later.
    service.track("n1", { "guard-retry": 3_000 });
    clock.set(3_000);
    await service.tick();
    expect(published.map((e) => e.id)).toEqual(["timer:n1:guard-retry:2000", "timer:n1:guard-retry:3000"]);
  });

  it("retries a failed publish on the next tick, then publishes it once", async () => {
    const { clock, service, published, errors } = setup({ failures: 2 });
    service.track("n1", { suspect: 2_000 });
    service.start();
    await clock.advance(1_000); // tick at 2000: fails
    expect(published).toEqual([]);
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe("nats: timeout");
    await clock.advance(100); // fails again
    expect(errors).toHaveLength(2);
    await clock.advance(100); // succeeds
    expect(published.map((e) => [e.id, e.at])).toEqual([["timer:n1:suspect:2000", 2_200]]);
    await clock.advance(1_000);
    expect(published).toHaveLength(1);
    expect(errors).toHaveLength(2);
    service.stop();
  });

  it("keeps ticking after a failure for one node and still fires the others", async () => {
    const { clock, service, published, errors } = setup({ failures: 1 });
    service.track("a", { suspect: 2_000 });
    service.track("b", { suspect: 2_000 });
    clock.set(2_000);
    await service.tick();
    expect(errors).toHaveLength(1);
    expect(published.map((e) => e.id)).toEqual(["timer:b:suspect:2000"]);
    await service.tick();
    expect(published.map((e) => e.id)).toEqual(["timer:b:suspect:2000", "timer:a:suspect:2000"]);
  });
});
