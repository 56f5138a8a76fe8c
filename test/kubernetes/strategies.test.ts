import { afterEach, describe, expect, it } from "vitest";
import { FENCING_TAINT, OUT_OF_SERVICE_TAINT, type Strategy } from "@fenceline/contracts";
import { startSimK8s, testPolicy, type SimK8s } from "./harness.js";

/**
 * Each remediation strategy end to end: a node running a StatefulSet replica crashes; the
 * engine fences it and remediates through the real Kubernetes adapter over HTTP; the replica
 * runs on another node, its ReadWriteOnce volume never on two nodes at once; the node comes
 * back and rejoins with its taints removed.
 */
describe("remediation strategies through the Kubernetes API", () => {
  let sim: SimK8s | undefined;
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
  });

  async function crashAndRecover(s: SimK8s) {
    const victim = s.nodeOf("db-0");
    const t0 = Date.now();
    await s.fleet.crash(victim);
    await s.waitFor("db-0 running on another node", () => {
      const r = s.cluster.replicas().find((x) => x.replica === "db-0")!;
      return r.runningOn.length === 1 && r.runningOn[0] !== victim;
    });
    const movedAfterMs = Date.now() - t0;
    await s.waitFor("the remediation to finish", () => s.timeline(victim).some((l) => l.includes("workloads moved off the node")));
    // Only once fencing was confirmed did anything move.
    const lines = s.timeline(victim);
    const text = lines.join("\n");
    expect(text.indexOf("fencing confirmed")).toBeGreaterThan(0);
    expect(text.indexOf("fencing confirmed")).toBeLessThan(text.indexOf("remediation step 1/"));
    // The machine comes back (a crashed machine is powered on again): it rejoins.
    await s.fleet.crash(victim, 100);
    await s.waitFor(`${victim} healthy again`, () => s.latest(victim) === "healthy" && s.timeline(victim).some((l) => l.includes("rejoined")));
    expect(s.cluster.node(victim)!.taints).toEqual([]);
    expect(s.violations).toEqual([]);
    return { victim, movedAfterMs };
  }

  it.each<[Strategy, string, "OutOfServiceTaint" | "ResourceDeletion"]>([
    ["ResourceDeletion", "1.30", "ResourceDeletion"],
    ["OutOfServiceTaint", "1.30", "OutOfServiceTaint"],
    ["Automatic", "1.27", "ResourceDeletion"],
    ["Automatic", "1.30", "OutOfServiceTaint"],
  ])("%s on Kubernetes %s → %s", async (strategy, version, effective) => {
    sim = await startSimK8s({
      policy: testPolicy({ remediation: [{ strategy, timeoutMs: 10_000 }] }),
      serverVersion: version,
    });
    const { victim } = await crashAndRecover(sim);
    const lines = sim.timeline(victim);
    expect(lines.some((l) => l.includes(`remediation step 1/1: ${effective}`))).toBe(true);
    if (strategy === "Automatic") expect(lines.some((l) => l.includes(`Automatic: Kubernetes ${version} → ${effective}`))).toBe(true);

    const events = sim.cluster.events().filter((e) => e.node === victim);
    const patches = sim.api.requests.filter((r) => r.method === "PATCH" && r.path.endsWith(`/nodes/${victim}`) && r.status === 200);
    if (effective === "OutOfServiceTaint") {
      // The taint did the work (PodGC and the attach-detach controller), then it came off again.
      expect(events.some((e) => e.kind === "pod.force-deleted" && e.what.includes("PodGC"))).toBe(true);
      expect(events.some((e) => e.kind === "volume.force-detached" && e.what.includes("out-of-service"))).toBe(true);
      expect(events.filter((e) => e.kind === "taint.added").map((e) => e.what)).toEqual([
        `taint ${FENCING_TAINT.key}:NoSchedule on ${victim}`,
        `taint ${OUT_OF_SERVICE_TAINT.key}=nodeshutdown:NoExecute on ${victim}`,
      ]);
      // Removed in reverse order: out-of-service when the workloads are gone, fencing on rejoin.
      expect(events.filter((e) => e.kind === "taint.removed").map((e) => e.what.split(" ")[1])).toEqual([
        `${OUT_OF_SERVICE_TAINT.key}=nodeshutdown:NoExecute`,
        `${FENCING_TAINT.key}:NoSchedule`,
      ]);
      expect(patches).toHaveLength(4);
    } else {
      // Force-deleted (grace 0) through the API, and the VolumeAttachment deleted through it.
      expect(events.some((e) => e.kind === "pod.force-deleted" && e.what.includes("grace 0"))).toBe(true);
      expect(events.some((e) => e.kind === "volume.detached" && e.what.includes("through the API"))).toBe(true);
      expect(sim.api.requests.some((r) => r.method === "DELETE" && r.path.includes("/volumeattachments/") && r.status === 200)).toBe(true);
      expect(events.some((e) => e.kind === "taint.added" && e.what.includes(OUT_OF_SERVICE_TAINT.key))).toBe(false);
      expect(patches).toHaveLength(2);
    }
  }, 60_000);

  it("the node-condition detector reports a silent kubelet (Ready=Unknown) as a second signal", async () => {
    sim = await startSimK8s({ conditions: true, graceMs: 1_000, policy: testPolicy({ remediation: [{ strategy: "OutOfServiceTaint", timeoutMs: 10_000 }] }) });
    const victim = sim.nodeOf("db-1");
    await sim.fleet.crash(victim);
    await sim.waitFor("the condition signal", () => sim!.audit.some((r) => r.node === victim && r.event.type === "signal.unhealthy"));
    const signal = sim.audit.find((r) => r.node === victim && r.event.type === "signal.unhealthy")!;
    expect(signal.event.source).toBe("condition-detector");
    await sim.waitFor("db-1 running elsewhere", () => sim!.cluster.replicas().find((r) => r.replica === "db-1")!.runningOn.some((n) => n !== victim));
    await sim.fleet.crash(victim, 100);
    await sim.waitFor(`${victim} healthy with its condition cleared`, () =>
      sim!.latest(victim) === "healthy" && sim!.audit.some((r) => r.node === victim && r.event.type === "signal.healthy" && r.seq > signal.seq),
    );
    expect(sim.violations).toEqual([]);
  }, 60_000);
});
