import { describe, expect, it } from "vitest";
import { computeSafeTime, DEFAULT_POLICY, DEMO_POLICY, Policy, resolveLimit, safeTimeOf } from "@fenceline/contracts";

describe("policy", () => {
  it("has documented defaults", () => {
    expect(DEFAULT_POLICY.heartbeat).toEqual({ intervalMs: 1000, timeoutMs: 3000 });
    expect(DEFAULT_POLICY.unhealthyDurationMs).toBe(5000);
    expect(DEFAULT_POLICY.fleet.minHealthy).toBe("51%");
    expect(DEFAULT_POLICY.remediation.map((r) => r.strategy)).toEqual(["Automatic", "ResourceDeletion"]);
    expect(safeTimeOf(DEFAULT_POLICY)).toBe(22_000);
    expect(safeTimeOf(DEMO_POLICY)).toBe(4_000);
  });

  it("accepts durations with units", () => {
    const p = Policy.parse({ heartbeat: { timeoutMs: "2s" }, unhealthyDurationMs: "1m" });
    expect(p.heartbeat.timeoutMs).toBe(2000);
    expect(p.unhealthyDurationMs).toBe(60_000);
  });

  it("explains the safe-time computation", () => {
    expect(computeSafeTime(DEFAULT_POLICY.agent).explanation).toBe(
      "5s control-plane timeout + 2s peer round + 10s watchdog timeout + 5s margin = 22s",
    );
  });

  it("rejects a safe time shorter than the minimum, showing the computation", () => {
    const r = Policy.safeParse({ safeTimeMs: "10s" });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]).toMatchObject({ code: "custom", path: ["safeTimeMs"] });
    expect(r.error!.issues[0]!.message).toBe(
      "safeTimeMs 10s is shorter than the minimum 22s (5s control-plane timeout + 2s peer round + 10s watchdog timeout + 5s margin = 22s)",
    );
    expect(Policy.safeParse({ safeTimeMs: "30s" }).success).toBe(true);
    // The minimum itself is enough.
    expect(safeTimeOf(Policy.parse({ safeTimeMs: "22s" }))).toBe(22_000);
    expect(Policy.safeParse({ safeTimeMs: 21_999 }).success).toBe(false);
  });

  it("rejects minHealthy at or below 50% while fencing relies on watchdogs", () => {
    expect(Policy.safeParse({ fleet: { minHealthy: "50%" } }).success).toBe(false);
    expect(Policy.safeParse({ fleet: { minHealthy: "50%" }, fencing: { watchdog: false, fenceAgent: true } }).success).toBe(true);
  });

  it("rounds limits towards remediating less", () => {
    expect(resolveLimit("40%", 25, "down")).toBe(10);
    expect(resolveLimit("40%", 6, "down")).toBe(2);
    expect(resolveLimit("51%", 12, "up")).toBe(7);
    expect(resolveLimit(3, 12, "down")).toBe(3);
    expect(resolveLimit("3", 12, "down")).toBe(3);
  });
});
