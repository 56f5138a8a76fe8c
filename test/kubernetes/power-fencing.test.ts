import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type AuditRecord, DEMO_POLICY, type PolicyInput } from "@fenceline/contracts";
import { FLEET_LABEL, isRunningAndReady, type KubeletFleet } from "@fenceline/kube-lab";
import { ipmiDevices } from "../fencing/harness.js";
import { startUpLab, type UpLab } from "../support/up-lab.js";
import { kubeAdmin, startDbFleet } from "./harness.js";

/**
 * Power fencing on the real control plane: `fenceline up --kubeconfig` (the engine
 * ServiceAccount's token) `--fence-devices`, the simulated kubelets of kube-lab, and an ipmi_sim
 * BMC per machine reached by the real fence_ipmilan. The levels are [ipmi], then [watchdog].
 */
const POLICY: PolicyInput = {
  ...DEMO_POLICY,
  version: "power-k8s",
  unhealthyDurationMs: 1_000,
  agent: { ...DEMO_POLICY.agent, watchdogTimeoutMs: 10_000 },
  fencing: { levels: [{ methods: ["ipmi"], timeoutMs: "15s" }, ["watchdog"]], timeoutMs: "2m" },
  remediation: [{ strategy: "Automatic", timeoutMs: 20_000 }],
};

describe("power fencing on the real control plane", () => {
  const fleetName = "power";
  const workers = ["power-w1", "power-w2", "power-w3", "power-w4", "power-w5"];
  const admin = kubeAdmin();
  let machines: KubeletFleet;
  let stopFleet: (() => Promise<void>) | undefined;
  let lab: UpLab;

  const podNode = async (name: string) =>
    (await admin.find(`/api/v1/namespaces/${fleetName}/pods/${name}`))?.spec.nodeName as string | undefined;
  const runningElsewhere = (name: string, node: string) => async () => {
    const pod = await admin.find(`/api/v1/namespaces/${fleetName}/pods/${name}`);
    return (
      pod !== null &&
      pod.spec.nodeName !== node &&
      isRunningAndReady(pod) &&
      machines.replicas().find((r) => r.replica === `${fleetName}/${name}`)?.runningOn.length === 1
    );
  };
  // Given the lab while it starts (`ready`), before `lab` is set.
  const allHealthy = async (within: UpLab = lab) => {
    const s = await within.states();
    return workers.every((w) => s.get(w) === "healthy") && machines.replicas().every((r) => r.runningOn.length === 1);
  };
  const MOVES = ["pods.delete", "workloads.await-gone"];
  const firstMoveAfterConfirmation = (records: AuditRecord[]) => {
    const confirmed = records.find((r) => r.reason?.includes("fencing confirmed"))!;
    const move = records.find((r) =>
      r.commands.some(
        (c) => MOVES.includes(c.kind) || (c.kind === "taint.add" && c.params.taint.key === "node.kubernetes.io/out-of-service"),
      ),
    );
    expect(confirmed).toBeDefined();
    expect(move!.seq).toBeGreaterThanOrEqual(confirmed.seq);
    return confirmed;
  };

  beforeAll(async () => {
    ({ machines, stop: stopFleet } = await startDbFleet({ admin, name: fleetName, nodes: workers, replicas: 2 }));
    lab = await startUpLab({
      name: "power-k8s",
      nodes: workers,
      cluster: machines,
      policy: POLICY,
      agentPolicy: DEMO_POLICY,
      upArgs: () => ["--kubeconfig", inject("kubeTest").engineKubeconfig, "--node-selector", `${FLEET_LABEL}=${fleetName}`],
      devices: (bmcs) => ipmiDevices(bmcs),
      bootGate: true,
      waitTimeoutMs: 60_000,
      ready: { what: "five healthy workers", check: allHealthy },
    });
  }, 180_000);

  afterAll(async () => {
    await lab?.stop();
    await stopFleet?.();
  }, 90_000);

  it("a hung node whose watchdog is broken is powered off, its StatefulSet pod moves once through the API, then it is powered on and rejoins", async () => {
    const victim = (await podNode("db-0"))!;
    const bmc = lab.bmcs.get(victim)!;
    const at = Date.now();
    await lab.sim.fleet.hang(victim, { watchdog: "broken" });
    await lab.waitFor("db-0 running and ready on another node", runningElsewhere("db-0", victim));
    console.log(`real control plane: hung node ${victim}: db-0 running and ready elsewhere ${Date.now() - at} ms after the hang`);
    const records = (await lab.audit(victim)).filter((r) => r.at >= at - 100);
    const confirmed = firstMoveAfterConfirmation(records);
    expect(confirmed.reason).toContain("fencing confirmed: fence agent: powered off (level 1/2 [ipmi])");
    expect(bmc.powerChanges[0]?.to).toBe("off");
    expect(records.find((r) => r.reason?.includes("Automatic: Kubernetes 1.37 → OutOfServiceTaint"))).toBeDefined();
    await lab.waitFor(`${victim} healthy again`, async () => (await lab.states()).get(victim) === "healthy");
    expect(bmc.powerChanges.map((c) => c.to)).toEqual(["off", "on"]);
    expect(machines.replicas().find((r) => r.replica === `${fleetName}/db-0`)?.runningOn).toHaveLength(1);
    expect(lab.violations).toEqual([]);
    await lab.waitFor("every node healthy, every replica running once", allHealthy);
  }, 180_000);

  it("a BMC that does not answer escalates to the watchdog level; the pod moves once, after the safe time", async () => {
    const victim = (await podNode("db-0"))!;
    const bmc = lab.bmcs.get(victim)!;
    const changes = bmc.powerChanges.length;
    await bmc.faults.unreachable(true);
    const at = Date.now();
    try {
      await lab.sim.fleet.crash(victim, 25_000);
      await lab.waitFor("db-0 running and ready on another node", runningElsewhere("db-0", victim));
      const records = (await lab.audit(victim)).filter((r) => r.at >= at - 100);
      const confirmed = firstMoveAfterConfirmation(records);
      expect(records.find((r) => r.reason?.includes("escalating to level 2/2 [watchdog]"))?.reason).toContain(
        "fence.poweroff (ipmi) failed: unreachable",
      );
      expect(confirmed.reason).toContain("(level 2/2 [watchdog])");
      expect(bmc.powerChanges.length).toBe(changes);
      expect(lab.violations).toEqual([]);
    } finally {
      await bmc.faults.unreachable(false);
    }
    await lab.waitFor("every node healthy, every replica running once", allHealthy, 90_000);
  }, 180_000);
});
