import { describe, expect, it } from "vitest";
import type { AuditRecord } from "@fenceline/contracts";
import { faultTimings } from "../src/demo/fault-timings.js";
import { minorityGroupSize, SCENARIOS, checkScenario } from "../src/demo/scenarios.js";

let seq = 0;
const record = (at: number, from: string, to: string, type = "x", reason?: string): AuditRecord => ({
  v: 1,
  id: `a${++seq}`,
  node: "node-2",
  seq,
  at,
  event: { id: `e${seq}`, type, source: "test" },
  from,
  to,
  changed: from !== to,
  epoch: 1,
  commands: [],
  timers: { set: {}, cleared: [] },
  policyVersion: "demo-1",
  ...(reason ? { reason } : {}),
});

describe("demo summary: fault timings", () => {
  const t0 = 10_000;

  it("a node cut off, fenced and back: each step timed from the fault", () => {
    const records = [
      record(11_000, "healthy", "suspect.waiting", "heartbeat.missed"),
      record(13_000, "suspect.requestingSlot", "fencing"),
      record(
        14_000,
        "fencing",
        "remediating.selecting",
        "timer.fired",
        "fencing confirmed: safe time: silent for 4s with a healthy majority since 9000",
      ),
      record(14_700, "rejoining.untainting", "healthy", "command.result"),
    ];
    expect(faultTimings(records, t0)).toEqual({
      detectedAfterMs: 1_000,
      fencedAfterMs: 4_000,
      rejoinedAfterMs: 4_700,
      fencedBy: "safe-time",
    });
  });

  it("says how fencing was confirmed: reboot, watchdog, safe time or power; null when it was not", () => {
    const by = (reason: string) => faultTimings([record(12_000, "fencing", "remediating.selecting", "x", reason)], t0).fencedBy;
    expect(by("fencing confirmed: reboot: boot id b1 → b2")).toBe("reboot");
    expect(by("fencing confirmed: watchdog stop acknowledged and its timeout passed")).toBe("watchdog");
    expect(by("fencing confirmed: fence agent: powered off")).toBe("power");
    expect(by("remediation step 1/2: OutOfServiceTaint")).toBeNull();
  });

  it("a return to healthy just before the fault (in the slack window) is not the rejoin: the one after the node left is", () => {
    const records = [
      record(9_990, "suspect.waiting", "recovered"),
      record(9_990, "recovered", "healthy"),
      record(11_000, "healthy", "suspect.waiting", "heartbeat.missed"),
      record(14_000, "fencing", "rejoining.deciding"),
      record(14_900, "rejoining.untainting", "healthy", "command.result"),
    ];
    expect(faultTimings(records, t0).rejoinedAfterMs).toBe(4_900);
  });

  it("a node that never left healthy, or has not come back yet, has no rejoin time", () => {
    expect(faultTimings([record(10_500, "healthy", "healthy", "signal.healthy")], t0).rejoinedAfterMs).toBeNull();
    expect(faultTimings([record(11_000, "healthy", "suspect.waiting", "heartbeat.missed")], t0).rejoinedAfterMs).toBeNull();
  });
});

describe("demo scenario partition-minority: the group is a minority of the fleet", () => {
  it("three of 7 or more; fewer in a smaller fleet; never a majority", () => {
    expect(minorityGroupSize(3, 12)).toBe(3);
    expect(minorityGroupSize(3, 7)).toBe(3);
    expect(minorityGroupSize(3, 6)).toBe(2);
    expect(minorityGroupSize(3, 5)).toBe(2);
    for (let n = 5; n <= 40; n++) expect(minorityGroupSize(3, n) * 2).toBeLessThan(n);
  });

  it("refuses a fleet too small for a cut-off group of two, saying why", () => {
    expect(() => checkScenario(SCENARIOS["partition-minority"]!, 4)).toThrow(
      "partition-minority needs at least 5 nodes (a group of 2 cut off from the other 3); got 4",
    );
    expect(() => checkScenario(SCENARIOS["partition-minority"]!, 5)).not.toThrow();
    expect(() => checkScenario(SCENARIOS.crash!, 3)).not.toThrow();
  });
});
