import { describe, expect, it } from "vitest";
import { VirtualClock, VirtualWatchdog } from "../src/index.js";

function setup(timeoutMs = 10_000) {
  const clock = new VirtualClock();
  const fires: number[] = [];
  const watchdog = new VirtualWatchdog({ clock, timeoutMs, onFire: () => fires.push(clock.now()) });
  return { clock, fires, watchdog };
}

describe("VirtualWatchdog", () => {
  it("does nothing before start", () => {
    const { clock, fires, watchdog } = setup();
    clock.advance(60_000);
    expect(fires).toEqual([]);
    expect(watchdog.state).toBe("idle");
    expect(watchdog.timeoutMs).toBe(10_000);
  });

  it("fires once, timeoutMs after the last feed, when not fed", async () => {
    const { clock, fires, watchdog } = setup();
    await watchdog.start();
    clock.advance(6_000);
    await watchdog.feed();
    clock.advance(6_000);
    await watchdog.feed();
    clock.advance(9_999);
    expect(fires).toEqual([]);
    clock.advance(1);
    expect(fires).toEqual([22_000]);
    expect(watchdog.firedAt).toBe(22_000);
    expect(watchdog.state).toBe("fired");
    clock.advance(60_000);
    expect(fires).toHaveLength(1);
  });

  it("never fires while fed in time", async () => {
    const { clock, fires, watchdog } = setup();
    await watchdog.start();
    for (let i = 0; i < 100; i++) {
      clock.advance(9_000);
      await watchdog.feed();
    }
    expect(fires).toEqual([]);
    expect(watchdog.lastFedAt).toBe(900_000);
  });

  it("does not fire after the magic close, and feeding a closed one does not re-arm it", async () => {
    const { clock, fires, watchdog } = setup();
    await watchdog.start();
    clock.advance(5_000);
    await watchdog.close();
    await watchdog.feed();
    clock.advance(60_000);
    expect(fires).toEqual([]);
    expect(watchdog.state).toBe("closed");
    expect(watchdog.firedAt).toBeUndefined();
  });

  it("can be started again after firing (the agent after the reboot)", async () => {
    const { clock, fires, watchdog } = setup(1_000);
    await watchdog.start();
    clock.advance(1_000);
    await watchdog.start();
    clock.advance(500);
    await watchdog.feed();
    clock.advance(1_000);
    expect(fires).toEqual([1_000, 2_500]);
    expect(watchdog.firedAt).toBe(2_500);
  });

  it("start rejects when no watchdog device is available", async () => {
    const clock = new VirtualClock();
    const watchdog = new VirtualWatchdog({ clock, timeoutMs: 1_000, onFire: () => undefined, available: false });
    await expect(watchdog.start()).rejects.toThrow(/not available/);
  });

  it("counts the feeds that kept it armed (not the start, not feeds after it fired), and tells onFire when", async () => {
    const clock = new VirtualClock(0);
    const fires: number[] = [];
    const watchdog = new VirtualWatchdog({ clock, timeoutMs: 1_000, onFire: (at) => fires.push(at) });
    await watchdog.start();
    for (let i = 0; i < 3; i++) {
      clock.advance(500);
      await watchdog.feed();
    }
    expect(watchdog.feeds).toBe(3);
    clock.advance(1_000);
    expect(fires).toEqual([2_500]);
    expect(watchdog.state).toBe("fired");
    await watchdog.feed();
    expect(watchdog.feeds).toBe(3);
  });
});
