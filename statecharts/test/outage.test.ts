import { describe, expect, it } from "vitest";
import { Policy } from "@fenceline/contracts";
import { createHarness } from "./harness.js";

// Safe time 1 + 0.5 + 1.5 + 1 = 4 s; after a majority returns: 3 × 0.5 + 1.5 + 1 = 4 s.
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

  it("waits three peer rounds plus the watchdog after the majority came back", () => {
    const h = fencingAfterGrant({ majoritySince: 59_000 });
    expect(h.context.timers["safe-time"]).toBe(59_000 + 4_000);
    expect(h.reasons.join(" ")).toContain("counted from the return of a healthy majority");
  });

  it("with peer rounds long enough that three of them outlast the safe time, a majority back at or before the last heartbeat changes nothing", () => {
    // Safe time 1 + 1 + 1.5 + 1 = 4.5 s; after a majority returns: 3 × 1 + 1.5 + 1 = 5.5 s.
    const slow = Policy.parse({ ...policy, version: "outage-slow-rounds", agent: { ...policy.agent, peerRoundMs: 1_000 } });
    const grantAt = (majoritySince: number) => {
      const h = createHarness(slow);
      h.send("node.joined", { bootId: "b1", incarnation: 1 }, 0);
      h.send("heartbeat.missed", { lastSeenAt: 1_000, bootId: "b1" }, 2_000);
      h.fire("suspect");
      h.result("slot.acquire", true, 4_100, { facts: { majoritySince } });
      expect(h.path).toBe("fencing");
      return h.context.timers["safe-time"];
    };
    expect(grantAt(500)).toBe(1_000 + 4_500);
    expect(grantAt(1_000)).toBe(1_000 + 4_500);
    expect(grantAt(1_001)).toBe(1_001 + 5_500);
  });

  it("without a majority time from the guard, counts from the last heartbeat", () => {
    const h = fencingAfterGrant();
    expect(h.context.timers["safe-time"]).toBe(60_000);
  });
});

describe("results answer the command they echo", () => {
  it("a late fencing taint.add does not complete the out-of-service step, the out-of-service one does", () => {
    const h = createHarness(policy);
    h.send("node.joined", { bootId: "b1", incarnation: 1 }, 0);
    h.send("heartbeat.missed", { lastSeenAt: 1_000, bootId: "b1" }, 2_000);
    h.fire("suspect");
    h.result("slot.acquire", true, 3_000);
    h.fire("safe-time");
    h.result("slot.acquire", true, 5_000, { facts: { majoritySince: 0 } });
    h.result("cluster.version", true, 5_100, { facts: { serverVersion: "1.30" } });
    expect(h.kinds).toEqual(["taint.add", "workloads.await-gone"]);
    h.result("taint.add", true, 5_200, { facts: { taint: "fenceline.io/fencing" } });
    expect(h.context.remediation.pending).toEqual(["taint.add", "workloads.await-gone"]);
    h.result("taint.add", true, 5_300, { facts: { taint: "node.kubernetes.io/out-of-service" } });
    expect(h.context.remediation.pending).toEqual(["workloads.await-gone"]);
  });

  it("an answer to an earlier re-provisioning attempt does not count for the current one", () => {
    const h = createHarness(policy);
    h.send("node.joined", { bootId: "b1", incarnation: 1 }, 0);
    h.send("boot.changed", { previousBootId: "b1", bootId: "b2" }, 1_000);
    expect(h.path).toBe("rejoining.reprovisioning");
    h.result("reprovision", false, 1_100, { facts: { attempt: 1 } });
    h.fire("reprovision-retry");
    expect(h.context.rejoin.attempt).toBe(2);
    h.result("reprovision", true, 9_000, { facts: { attempt: 1 } });
    expect(h.path).toBe("rejoining.reprovisioning");
    h.result("reprovision", true, 9_100, { facts: { attempt: 2 } });
    expect(h.path).toBe("rejoining.untainting");
  });
});
