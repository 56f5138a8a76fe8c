import { describe, expect, it } from "vitest";
import { Policy } from "@fenceline/contracts";
import { createHarness } from "./harness.js";

// Safe time 1 + 0.5 + 1.5 + 1 = 4 s; after a majority returns: 2 × 0.5 + 1.5 + 1 = 3.5 s.
const policy = Policy.parse({
  version: "outage-test",
  heartbeat: { intervalMs: 200, timeoutMs: 1_000 },
  unhealthyDurationMs: 2_000,
  agent: { controlPlaneTimeoutMs: 1_000, peerRoundMs: 500, watchdogTimeoutMs: 1_500, marginMs: 1_000 },
});

function fencingAfterGrant(facts?: Record<string, number>) {
  const h = createHarness(policy);
  h.send("node.joined", { bootId: "b1", incarnation: 1 }, 0);
  h.send("heartbeat.missed", { lastSeenAt: 1_000, bootId: "b1" }, 2_000);
  h.fire("suspect");
  h.result("slot.acquire", true, 60_000, facts ? { facts } : {});
  expect(h.path).toBe("fencing");
  return h;
}

describe("safe time after a control-plane outage", () => {
  it("counts from the last heartbeat when the healthy majority predates it", () => {
    const h = fencingAfterGrant({ majoritySince: 500 });
    expect(h.context.timers["safe-time"]).toBe(60_000); // lastSeen + 4 s is long past: now
  });

  it("waits two peer rounds plus the watchdog after the majority came back", () => {
    const h = fencingAfterGrant({ majoritySince: 59_000 });
    expect(h.context.timers["safe-time"]).toBe(59_000 + 3_500);
    expect(h.reasons.join(" ")).toContain("counted from the return of a healthy majority");
  });

  it("without a majority time from the guard, counts from the last heartbeat", () => {
    const h = fencingAfterGrant();
    expect(h.context.timers["safe-time"]).toBe(60_000);
  });
});
