import { describe, expect, it } from "vitest";
import { VirtualClock } from "../src/index.js";

describe("VirtualClock", () => {
  it("does nothing until time is advanced", () => {
    const clock = new VirtualClock(1_000);
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(clock.now()), 10);
    expect(clock.now()).toBe(1_000);
    expect(fired).toEqual([]);
    expect(clock.pendingTimers).toBe(1);
    expect(clock.nextDueAt()).toBe(1_010);
  });

  it("fires due callbacks in due-time order, ties in scheduling order, each at its due time", () => {
    const clock = new VirtualClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`c@${clock.now()}`), 30);
    clock.setTimeout(() => fired.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => fired.push(`b1@${clock.now()}`), 20);
    clock.setTimeout(() => fired.push(`b2@${clock.now()}`), 20);
    clock.setTimeout(() => fired.push(`late@${clock.now()}`), 100);
    expect(clock.advance(50)).toBe(4);
    expect(fired).toEqual(["a@10", "b1@20", "b2@20", "c@30"]);
    expect(clock.now()).toBe(50);
    clock.advance(50);
    expect(fired.at(-1)).toBe("late@100");
  });

  it("fires callbacks scheduled by callbacks when they fall within the window", () => {
    const clock = new VirtualClock();
    const fired: number[] = [];
    const tick = (): void => {
      fired.push(clock.now());
      clock.setTimeout(tick, 10);
    };
    clock.setTimeout(tick, 10);
    clock.advance(35);
    expect(fired).toEqual([10, 20, 30]);
    clock.setTimeout(() => fired.push(-clock.now()), 0);
    clock.advance(0);
    expect(fired.at(-1)).toBe(-35);
  });

  it("does not fire cancelled callbacks", () => {
    const clock = new VirtualClock();
    const fired: string[] = [];
    const a = clock.setTimeout(() => fired.push("a"), 10);
    clock.setTimeout(() => fired.push("b"), 10);
    clock.clearTimeout(a);
    clock.clearTimeout(a);
    clock.clearTimeout("not a handle");
    clock.advance(20);
    expect(fired).toEqual(["b"]);
    expect(clock.pendingTimers).toBe(0);
  });

  it("runUntilIdle stops when idle, or at the limit when work never ends", () => {
    const clock = new VirtualClock();
    clock.setTimeout(() => clock.setTimeout(() => undefined, 500), 200);
    expect(clock.runUntilIdle(10_000)).toBe(true);
    expect(clock.now()).toBe(700);

    const periodic = (): void => void clock.setTimeout(periodic, 100);
    periodic();
    expect(clock.runUntilIdle(1_000)).toBe(false);
    expect(clock.now()).toBe(1_700);
  });

  it("rejects going backwards", () => {
    const clock = new VirtualClock(100);
    expect(() => clock.advance(-1)).toThrow(RangeError);
    expect(() => clock.advanceTo(99)).toThrow(RangeError);
  });

  it("is deterministic: the same schedule gives the same trace", () => {
    const run = (): string[] => {
      const clock = new VirtualClock();
      const trace: string[] = [];
      for (let i = 0; i < 50; i++) {
        clock.setTimeout(
          () => {
            trace.push(`${i}@${clock.now()}`);
            if (i % 3 === 0) clock.setTimeout(() => trace.push(`child${i}@${clock.now()}`), (i * 7) % 13);
          },
          (i * 37) % 101,
        );
      }
      clock.runUntilIdle(1_000);
      return trace;
    };
    expect(run()).toEqual(run());
  });

  it("advanceSettling lets what a callback starts run before the next callback, and fires what it schedules within the window", async () => {
    const trace: string[] = [];
    const schedule = (clock: VirtualClock) => {
      clock.setTimeout(() => {
        trace.push(`first@${clock.now()}`);
        // Async work (as the agent's ports do) that schedules the next timer after an await.
        void Promise.resolve().then(() => clock.setTimeout(() => trace.push(`second@${clock.now()}`), 100));
      }, 100);
      clock.setTimeout(() => trace.push(`third@${clock.now()}`), 150);
    };
    const settling = new VirtualClock(0);
    schedule(settling);
    expect(await settling.advanceSettling(500)).toBe(3);
    expect(trace).toEqual(["first@100", "third@150", "second@200"]);
    expect(settling.now()).toBe(500);

    // The synchronous advance returns before the continuation runs: the second timer is scheduled late.
    trace.length = 0;
    const synchronous = new VirtualClock(0);
    schedule(synchronous);
    expect(synchronous.advance(500)).toBe(2);
    await Promise.resolve();
    expect(synchronous.advance(0)).toBe(0);
    expect(synchronous.nextDueAt()).toBe(600);
    await expect(settling.advanceSettling(-1)).rejects.toThrow(RangeError);
  });
});
