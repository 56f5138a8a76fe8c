import { describe, expect, it } from "vitest";
import { startRealK8s } from "./harness.js";

/**
 * The condition detector on what the real node lifecycle controller writes: a kubelet that
 * stops (its machine and agent fine) lets its Lease expire; after --node-monitor-grace-period
 * (50 s, the default) the controller sets Ready=Unknown ("Kubelet stopped posting node
 * status.") and taints the node unreachable; that is Fenceline's signal.
 */
describe("node conditions from the real node lifecycle controller", () => {
  it("a silent kubelet: Ready=Unknown after the grace period is a signal; fencing reboots the machine; Ready again clears it", async () => {
    const s = await startRealK8s({ name: "cond", conditions: true, conditionDurationMs: 0 });
    try {
      const victim = await s.nodeOf("db-1");
      const t0 = Date.now();
      s.machines.stopKubelet(victim);
      await s.waitFor("the condition signal", () => s.audit.some((r) => r.node === victim && r.event.type === "signal.unhealthy"), 120_000);
      const after = Date.now() - t0;
      // Not before the grace period: the controller waits 50 s from the last Lease renewal.
      expect(after).toBeGreaterThan(40_000);
      const signal = s.audit.find((r) => r.node === victim && r.event.type === "signal.unhealthy")!;
      expect(signal.event.source).toBe("condition-detector");
      const ready = ((await s.node(victim)).status.conditions as Array<{ type: string; status: string; reason: string; message: string }>).find((c) => c.type === "Ready")!;
      expect(ready).toMatchObject({ status: "Unknown", reason: "NodeStatusUnknown", message: "Kubelet stopped posting node status." });
      await s.waitFor("the controller's unreachable taint", async () =>
        (((await s.node(victim)).spec?.taints ?? []) as Array<{ key: string; effect: string }>).some((t) => t.key === "node.kubernetes.io/unreachable" && t.effect === "NoSchedule"),
      );
      // The agent still heartbeats: fencing asks it to stop feeding its watchdog, which resets the machine.
      await s.waitFor(`${victim} back with a new boot and healthy`, () => s.latest(victim) === "healthy" && s.fleet.status(victim).resets > 0, 90_000);
      await s.waitFor("Ready again, the condition cleared", () => s.audit.some((r) => r.node === victim && r.event.type === "signal.healthy" && r.seq > signal.seq), 60_000);
      await s.waitFor(`${victim}'s taints removed`, async () => ((await s.node(victim)).spec?.taints ?? []).length === 0, 60_000);
      expect(s.timeline(victim).join("\n")).toContain("fencing confirmed: reboot");
      expect(s.violations).toEqual([]);
      process.stderr.write(`conditions.test: kubelet stopped → Ready=Unknown signal after ${(after / 1000).toFixed(1)} s\n`);
    } finally {
      await s.stop();
    }
  }, 300_000);
});
