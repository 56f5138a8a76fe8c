import { afterEach, describe, expect, it } from "vitest";
import { OUT_OF_SERVICE_TAINT } from "@fenceline/contracts";
import { startSimK8s, testPolicy, type SimK8s } from "./harness.js";

/**
 * Escalation through the Kubernetes API: the out-of-service taint cannot finish because the
 * (simulated) kube-controller-manager's PodGC is off, so the terminating pods of the dead node
 * stay; the step times out and the next remediation in the list runs.
 */
describe("escalation", () => {
  let sim: SimK8s | undefined;
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
  }, 60_000);

  it("OutOfServiceTaint times out, ResourceDeletion succeeds", async () => {
    sim = await startSimK8s({
      policy: testPolicy({
        remediation: [
          { strategy: "OutOfServiceTaint", timeoutMs: 2_000 },
          { strategy: "ResourceDeletion", timeoutMs: 5_000 },
        ],
      }),
    });
    sim.api.setPodGcEnabled(false);
    const victim = sim.nodeOf("db-0");
    await sim.fleet.crash(victim);
    await sim.waitFor("db-0 running on another node", () => sim!.cluster.replicas().find((r) => r.replica === "db-0")!.runningOn.some((n) => n !== victim));
    const text = sim.timeline(victim).join("\n");
    expect(text).toContain("remediation step 1/2: OutOfServiceTaint");
    expect(text).toContain("OutOfServiceTaint did not complete: escalating to ResourceDeletion");
    expect(text).toContain("remediation step 2/2: ResourceDeletion");
    // The pods were stuck terminating until ResourceDeletion force-deleted them.
    const events = sim.cluster.events().filter((e) => e.node === victim);
    expect(events.some((e) => e.kind === "pod.deletion-requested" && e.what.includes("NoExecute"))).toBe(true);
    expect(events.some((e) => e.kind === "pod.force-deleted" && e.what.includes("grace 0"))).toBe(true);
    expect(events.some((e) => e.kind === "pod.force-deleted" && e.what.includes("PodGC"))).toBe(false);
    // The out-of-service taint is taken off when escalating.
    await sim.waitFor("the out-of-service taint removed", () => !sim!.cluster.node(victim)!.taints.some((t) => t.key === OUT_OF_SERVICE_TAINT.key));

    await sim.fleet.crash(victim, 100);
    await sim.waitFor(`${victim} healthy`, () => sim!.latest(victim) === "healthy");
    expect(sim.cluster.node(victim)!.taints).toEqual([]);
    expect(sim.violations).toEqual([]);
  }, 60_000);

  it("every remediation fails → operator, with the reasons in the audit", async () => {
    sim = await startSimK8s({
      policy: testPolicy({
        remediation: [
          { strategy: "OutOfServiceTaint", timeoutMs: 1_500 },
          { strategy: "ResourceDeletion", timeoutMs: 1_500 },
        ],
      }),
    });
    sim.api.setPodGcEnabled(false);
    // The engine's service account lacks the RBAC rule to delete pods.
    sim.api.injectFault({ status: 403, method: "DELETE", path: "/pods/", times: Infinity });
    const victim = sim.nodeOf("db-0");
    await sim.fleet.crash(victim);
    await sim.waitFor(`${victim} needs an operator`, () => sim!.latest(victim) === "operator", 20_000);
    const text = sim.timeline(victim).join("\n");
    expect(text).toContain("OutOfServiceTaint did not complete: escalating to ResourceDeletion");
    expect(text).toContain("operator required: every remediation in the escalation list failed");
    expect(text).toMatch(/pods\.delete failed: Kubernetes refused to delete pods\/db-0 in namespace default \(403 Forbidden/);
    expect(text).toContain('{ apiGroups: [""], resources: ["pods"], verbs: ["delete"] }');
    // Nothing moved: the replica waits for a human rather than risking two copies.
    expect(sim.cluster.replicas().find((r) => r.replica === "db-0")!.runningOn).toEqual([]);
    expect(sim.cluster.node(victim)!.taints.map((t) => t.key)).toContain("fenceline.io/fencing");
    expect(sim.violations).toEqual([]);
  }, 60_000);
});
