import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { DEMO_POLICY } from "@fenceline/contracts";
import { FLEET_LABEL, isRunningAndReady, type KubeletFleet, listPods } from "@fenceline/kube-lab";
import { runCli } from "../e2e/cli.js";
import { startUpLab, type UpLab } from "../support/up-lab.js";
import { kubeAdmin, startDbFleet } from "./harness.js";

/**
 * `fenceline up --kubeconfig` as a user runs it, on the real control plane with the engine
 * ServiceAccount's token: the node watch registers the selected nodes (not the control-plane
 * node), a node labelled for exclusion is paused, and a crashed node is fenced and its
 * StatefulSet pod moved (the condition detector on the controller's Ready=Unknown is
 * remediation.test.ts's). Runs the built CLI, like test/e2e.
 */
describe("fenceline up --kubeconfig on the real control plane", () => {
  const fleetName = "up";
  const workers = ["up-w1", "up-w2", "up-w3", "up-w4", "up-w5"];
  const admin = kubeAdmin();
  let machines: KubeletFleet;
  let stopFleet: (() => Promise<void>) | undefined;
  let lab: UpLab;

  beforeAll(async () => {
    ({ machines, stop: stopFleet } = await startDbFleet({
      admin,
      name: fleetName,
      nodes: [...workers, "up-cp1"],
      replicas: 2,
      // The kubelet may not give itself a node-role label (NodeRestriction): an administrator does.
      beforeWorkloads: () =>
        admin.patch("/api/v1/nodes/up-cp1", {
          metadata: { labels: { "node-role.kubernetes.io/control-plane": "" } },
          spec: { taints: [{ key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" }] },
        }),
    }));
    lab = await startUpLab({
      name: "up-test",
      nodes: workers,
      cluster: machines,
      policy: { ...DEMO_POLICY, unhealthyDurationMs: 1_000, remediation: [{ strategy: "Automatic", timeoutMs: 20_000 }] },
      agentPolicy: DEMO_POLICY,
      upArgs: () => [
        "--kubeconfig",
        inject("kubeTest").engineKubeconfig,
        "--node-selector",
        `${FLEET_LABEL}=${fleetName},!node-role.kubernetes.io/control-plane`,
      ],
    });
  }, 150_000);

  afterAll(async () => {
    await lab?.stop();
    await stopFleet?.();
  }, 60_000);

  it("registers every selected node (not the control plane) as healthy", async () => {
    await lab.waitFor("five healthy workers", async () => {
      const s = await lab.states();
      return workers.every((w) => s.get(w) === "healthy");
    });
    expect((await lab.states()).has("up-cp1")).toBe(false);
    const listed = await runCli(["nodes", "--json", "--server", lab.nats.url]);
    expect((JSON.parse(listed.stdout) as Array<{ node: string }>).map((n) => n.node)).toEqual(workers);
  }, 60_000);

  it("pauses a node labelled fenceline.io/exclude-from-remediation=true", async () => {
    // A worker that runs no replica.
    const db = (await listPods(admin, fleetName)).map((p) => p.spec.nodeName as string);
    const excluded = workers.filter((w) => !db.includes(w)).at(-1)!;
    await admin.patch(`/api/v1/nodes/${excluded}`, { metadata: { labels: { "fenceline.io/exclude-from-remediation": "true" } } });
    await lab.waitFor(`${excluded} paused`, async () => (await lab.states()).get(excluded) === "paused");
  }, 60_000);

  it("a crashed node is fenced and its StatefulSet pod moves through the API", async () => {
    const victim = (await admin.get(`/api/v1/namespaces/${fleetName}/pods/db-0`)).spec.nodeName as string;
    await lab.sim.fleet.crash(victim);
    await lab.waitFor(
      "db-0 running and ready on another node",
      async () => {
        const pod = await admin.find(`/api/v1/namespaces/${fleetName}/pods/db-0`);
        return (
          pod !== null &&
          pod.spec.nodeName !== victim &&
          isRunningAndReady(pod) &&
          machines.replicas().find((r) => r.replica === `${fleetName}/db-0`)?.runningOn.length === 1
        );
      },
      60_000,
    );
    const audit = await runCli(["audit", "--node", victim, "--server", lab.nats.url]);
    expect(audit.stdout).toMatch(/Automatic: Kubernetes 1\.37 → OutOfServiceTaint/);
    expect(lab.violations).toEqual([]);
  }, 90_000);

  it("refuses Kubernetes flags without a cluster, as a usage error", async () => {
    const r = await runCli(["up", "--condition-duration", "5s"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--condition-duration needs --kubeconfig FILE or --in-cluster");
    const bad = await runCli(["up", "--kubeconfig", join(lab.dir, "missing.yaml"), "--server", lab.nats.url]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/fenceline up: cannot load the kubeconfig .*missing\.yaml/);
  });
});
