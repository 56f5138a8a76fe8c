import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, inject, it } from "vitest";
import { isRunningAndReady, listPods, serviceAccountToken, writeKubeconfig, type KubeClient, type KubeObject } from "@fenceline/kube-lab";
import { safeTimeOf } from "@fenceline/contracts";
import { kubeAdmin, startRealK8s, testPolicy, type RealK8s } from "./harness.js";

const run = promisify(execFile);

/** The VolumeAttachments of a volume (API view): node and attached. */
async function attachmentsOf(s: RealK8s, volume: string) {
  const vas = await s.admin.list("/apis/storage.k8s.io/v1/volumeattachments");
  return vas.items
    .filter((va) => va.spec?.source?.persistentVolumeName === volume)
    .map((va) => ({ node: va.spec.nodeName as string, attached: va.status?.attached === true }));
}

/** db-0 Running and Ready on another node than `victim`, running there (and only there) in truth, its volume attached there. */
async function replicaMovedOff(s: RealK8s, victim: string, replica = "db-0") {
  const pod = await s.pod(replica);
  if (!pod || !isRunningAndReady(pod) || pod.spec.nodeName === victim) return false;
  const truth = s.runningOn(replica);
  if (truth.length !== 1 || truth[0] !== pod.spec.nodeName) return false;
  const volume = `${s.namespace}-db-${replica.split("-").pop()}`;
  const vas = await attachmentsOf(s, volume);
  const backend = s.machines
    .volumeAttachments()
    .filter((a) => a.volume === volume)
    .map((a) => a.node);
  return (
    vas.length === 1 && vas[0]!.node === pod.spec.nodeName && vas[0]!.attached && backend.length === 1 && backend[0] === pod.spec.nodeName
  );
}

const deploymentReady = async (s: RealK8s, victim: string) => {
  const web = await listPods(s.admin, s.namespace, "web");
  return web.filter((p) => isRunningAndReady(p) && p.spec.nodeName !== victim).length === 2;
};

/** The machine is powered on again; it rejoins and every taint comes off its Node. */
async function rejoins(s: RealK8s, victim: string) {
  await s.fleet.crash(victim, 100);
  await s.waitFor(
    `${victim} rejoined`,
    () => s.latest(victim) === "healthy" && s.timeline(victim).some((l) => l.includes("rejoined")),
    60_000,
  );
  await s.waitFor(`${victim}'s taints removed`, async () => ((await s.node(victim)).spec?.taints ?? []).length === 0, 60_000);
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/**
 * Fenceline on the real control plane: a node running a StatefulSet replica (ReadWriteOnce CSI
 * volume) and a Deployment's pod fails; Fenceline fences it, remediates through the real API
 * server with the engine ServiceAccount's token, and the real controllers move the workloads.
 * The machines' ground truth is checked every 25 ms: never a replica or a volume on two machines.
 */
describe.concurrent("remediation on the real control plane", () => {
  it("crash, OutOfServiceTaint: the replica runs on another node once, its volume attached there; the node rejoins untainted; kubectl describe node tells the story", async () => {
    const s = await startRealK8s({
      name: "oos-crash",
      daemonSet: true,
      staticPods: true,
      policy: testPolicy({ remediation: [{ strategy: "OutOfServiceTaint", timeoutMs: 20_000 }] }),
    });
    try {
      const victim = await s.nodeOf("db-0");
      const t0 = Date.now();
      await s.fleet.crash(victim);
      await s.waitFor("db-0 running and ready on another node, its volume attached there", () => replicaMovedOff(s, victim), 60_000);
      const movedAfter = Date.now() - t0;
      // Pod GC did not do it: for the API the node is still Ready (50 s node monitor grace period).
      const ready = ((await s.node(victim)).status?.conditions ?? []).find((c: { type: string }) => c.type === "Ready");
      expect(ready?.status).toBe("True");
      await s.waitFor("the Deployment's two pods ready elsewhere", () => deploymentReady(s, victim));
      await s.waitFor("the remediation to finish", () =>
        s.timeline(victim).some((l) => l.includes("workloads moved off the node (OutOfServiceTaint)")),
      );
      const text = s.timeline(victim).join("\n");
      expect(text.indexOf("fencing confirmed")).toBeGreaterThan(0);
      expect(text.indexOf("fencing confirmed")).toBeLessThan(text.indexOf("remediation step 1/1: OutOfServiceTaint"));
      // The DaemonSet's pod and the static pod's mirror stay on the fenced node, as they should.
      const left = (await listPods(s.admin, s.namespace)).filter((p) => p.spec.nodeName === victim).map((p: KubeObject) => p.metadata.name);
      expect(left.some((n) => n.startsWith("node-agent-"))).toBe(true);
      expect(left).toContain(`static-agent-${victim}`);
      expect(left.some((n) => n.startsWith("db-") || n.startsWith("web-"))).toBe(false);
      process.stderr.write(
        `remediation.test: crash → db-0 running and ready elsewhere in ${seconds(movedAfter)} (OutOfServiceTaint, safe time ${seconds(4_000)})\n`,
      );

      await rejoins(s, victim);
      // The story on the Node object, as kubectl describe node shows it.
      const awaitedUid = (await s.node(victim)).metadata.uid;
      const { stdout } = await run("kubectl", ["--kubeconfig", inject("kubeTest").kube.kubeconfig, "describe", "node", victim]);
      const story = ["FencingStarted", "FencingConfirmed", "RemediationStarted", "WorkloadsMoved", "Reprovisioning", "Rejoined"];
      for (const reason of story) expect(stdout).toMatch(new RegExp(`(Warning|Normal)\\s+${reason}\\s+\\S+\\s+fenceline`));
      // In order, on the Node object (regarding: the node's uid, as kubectl looks them up).
      type KubeEvent = { regarding?: { name?: string; uid?: string }; reportingController?: string; reason?: string; eventTime?: string };
      const events = (await s.admin.list<KubeObject & KubeEvent>("/apis/events.k8s.io/v1/namespaces/default/events")).items
        .filter((e) => e.regarding?.name === victim && e.reportingController === "fenceline.io/engine")
        .sort((a, b) => String(a.eventTime).localeCompare(String(b.eventTime)));
      expect(events.map((e) => e.reason)).toEqual(story);
      expect(events.every((e) => e.regarding?.uid === (awaitedUid ?? e.regarding?.uid))).toBe(true);
      // Never twice, at any moment.
      expect(s.violations).toEqual([]);
      expect(s.runningOn("db-0")).toHaveLength(1);
      expect((await s.node(victim)).spec?.taints ?? []).toEqual([]);
    } finally {
      await s.stop();
    }
  }, 240_000);
  it("network loss, Automatic: the node fences itself while cut off, Fenceline picks the out-of-service taint on 1.37, the replica moves once, the node rejoins", async () => {
    const s = await startRealK8s({ name: "auto-netloss" });
    try {
      const victim = await s.nodeOf("db-0");
      await s.fleet.networkLoss(victim, 25_000);
      await s.waitFor("db-0 running and ready on another node", () => replicaMovedOff(s, victim), 60_000);
      await s.waitFor("the Deployment's two pods ready elsewhere", () => deploymentReady(s, victim));
      const text = s.timeline(victim).join("\n");
      expect(text).toContain("Automatic: Kubernetes 1.37 → OutOfServiceTaint");
      // It fenced itself: its watchdog reset it while it was cut off (its containers stopped then, not before).
      expect(s.fleet.status(victim).resets).toBeGreaterThan(0);
      await s.waitFor(
        `${victim} rejoined after the network came back`,
        () => s.latest(victim) === "healthy" && s.timeline(victim).some((l) => l.includes("rejoined")),
        90_000,
      );
      await s.waitFor(`${victim}'s taints removed`, async () => ((await s.node(victim)).spec?.taints ?? []).length === 0, 60_000);
      expect(s.violations).toEqual([]);
      expect(s.runningOn("db-0")).toHaveLength(1);
    } finally {
      await s.stop();
    }
  }, 240_000);

  it("reboot that lasts past the safe time: the agent's clean stop withdraws its contract, so nothing is assumed fenced by time; the new boot id confirms it, and the replica runs again on its node, once", async () => {
    const s = await startRealK8s({ name: "auto-reboot", rebootMs: 20_000 });
    try {
      const victim = await s.nodeOf("db-0");
      const uid = (await s.pod("db-0"))!.metadata.uid;
      const t0 = Date.now();
      await s.fleet.reboot(victim);
      await s.waitFor(`${victim} fencing`, () => s.latest(victim) === "fencing");
      // A clean stop (systemd stopping the agent, as on a reboot) disarms the watchdog: nothing
      // would reset the machine if only the agent had been stopped, so the engine waits.
      expect(s.timeline(victim).join("\n")).toMatch(/not assuming it fenced by time: its agent stopped cleanly and disarmed its watchdog/);
      await s.waitFor("the safe time passed", () => Date.now() - t0 > safeTimeOf(s.policy) + 2_000, 60_000);
      expect(s.latest(victim)).toBe("fencing");
      expect((await s.pod("db-0"))!.metadata.uid).toBe(uid);
      // Back with a new boot id: fencing confirmed by the reboot, re-provisioned, rejoined.
      await s.waitFor(
        `${victim} rejoined with its new boot id`,
        () => s.latest(victim) === "healthy" && s.timeline(victim).some((l) => l.includes("rejoined")),
        90_000,
      );
      expect(s.timeline(victim).join("\n")).toMatch(/fencing confirmed: reboot: boot id [\w-]+ → [\w-]+/);
      expect(s.timeline(victim).join("\n")).toMatch(/re-provisioning \(attempt 1\/\d\): rebooted/);
      await s.waitFor(`${victim}'s taints removed`, async () => ((await s.node(victim)).spec?.taints ?? []).length === 0, 60_000);
      expect((await s.node(victim)).status.nodeInfo.bootID).toBe(s.fleet.status(victim).bootId);
      // The same pod, never moved, running and ready on its node again, and only there.
      await s.waitFor("db-0 running and ready on its node again", async () => {
        const pod = await s.pod("db-0");
        return pod !== null && isRunningAndReady(pod) && pod.metadata.uid === uid && pod.spec.nodeName === victim;
      });
      expect(s.runningOn("db-0")).toEqual([victim]);
      expect(s.violations).toEqual([]);
    } finally {
      await s.stop();
    }
  }, 240_000);

  it("crash, ResourceDeletion: the pods are force-deleted, but the replacement waits for its volume (attached exclusively to the dead node) until the node is back; never twice", async () => {
    const s = await startRealK8s({
      name: "rd-crash",
      daemonSet: true,
      policy: testPolicy({ remediation: [{ strategy: "ResourceDeletion", timeoutMs: 20_000 }] }),
    });
    try {
      const victim = await s.nodeOf("db-0");
      const oldUid = (await s.pod("db-0"))!.metadata.uid;
      await s.fleet.crash(victim);
      await s.waitFor("the remediation to finish", () =>
        s.timeline(victim).some((l) => l.includes("workloads moved off the node (ResourceDeletion)")),
      );
      await s.waitFor("the Deployment's two pods ready elsewhere", () => deploymentReady(s, victim));
      await s.waitFor("db-0 re-created on another node", async () => {
        const pod = await s.pod("db-0");
        return pod !== null && pod.metadata.uid !== oldUid && pod.spec.nodeName !== victim;
      });
      // The attach-detach controller keeps the volume on the dead node (it is still "in use" there,
      // and there is no out-of-service taint): the replacement cannot attach it.
      await s.waitFor("the attach-detach controller's FailedAttachVolume event on the replacement", async () => {
        const events = await s.admin.list(`/api/v1/namespaces/${s.namespace}/events`, { fieldSelector: "involvedObject.name=db-0" });
        return events.items.some(
          (e) => e.reason === "FailedAttachVolume" && String(e.message).includes("already exclusively attached to one node"),
        );
      });
      expect(s.runningOn("db-0")).toEqual([]);
      expect((await attachmentsOf(s, `${s.namespace}-db-0`)).map((a) => a.node)).toEqual([victim]);
      // The DaemonSet's pod was left alone.
      expect((await listPods(s.admin, s.namespace, "node-agent")).filter((p) => p.spec.nodeName === victim)).toHaveLength(1);
      // Back: its kubelet reports the volume no longer in use, the controller detaches it, and the replica starts elsewhere.
      await s.fleet.crash(victim, 100);
      await s.waitFor("db-0 running and ready on another node, its volume attached there", () => replicaMovedOff(s, victim), 90_000);
      await s.waitFor(`${victim} rejoined`, () => s.latest(victim) === "healthy", 60_000);
      expect(s.violations).toEqual([]);
    } finally {
      await s.stop();
    }
  }, 240_000);

  it("escalation: the out-of-service taint cannot move a pod that tolerates it for an hour; the step times out and ResourceDeletion moves it", async () => {
    const s = await startRealK8s({
      name: "escalate",
      policy: testPolicy({
        remediation: [
          { strategy: "OutOfServiceTaint", timeoutMs: 4_000 },
          { strategy: "ResourceDeletion", timeoutMs: 20_000 },
        ],
      }),
      extraWorkloads: { pods: 1, create: lingeringPod },
    });
    try {
      const victim = await s.nodeOf("lingering");
      await s.fleet.crash(victim);
      await s.waitFor(
        "the escalation to ResourceDeletion and its end",
        () => s.timeline(victim).some((l) => l.includes("workloads moved off the node (ResourceDeletion)")),
        60_000,
      );
      const text = s.timeline(victim).join("\n");
      expect(text).toContain("remediation step 1/2: OutOfServiceTaint");
      // The step ends at its timeout: its timer fires, or a moment before it the await-gone
      // command (given the step's timeout as its budget) reports the pod still there. Both race
      // to the same 4 s, and either escalates.
      expect(text).toMatch(/remediation step timed out|workloads\.await-gone failed: 1 pod that must move .* after 4000 ms/);
      expect(text).toContain("OutOfServiceTaint did not complete: escalating to ResourceDeletion");
      expect(text).toContain("remediation step 2/2: ResourceDeletion");
      expect(await s.pod("lingering")).toBeNull();
      // The out-of-service taint came off when escalating.
      expect(((await s.node(victim)).spec?.taints ?? []).map((t: { key: string }) => t.key)).not.toContain(
        "node.kubernetes.io/out-of-service",
      );
      await rejoins(s, victim);
      expect(s.violations).toEqual([]);
    } finally {
      await s.stop();
    }
  }, 240_000);

  it("every remediation fails → operator: a ServiceAccount whose role lacks pods delete gets a real 403, named with the RBAC rule; nothing moves", async () => {
    const kubeconfig = await limitedKubeconfig(kubeAdmin());
    const s = await startRealK8s({
      name: "operator",
      kubeconfig,
      policy: testPolicy({
        remediation: [
          { strategy: "OutOfServiceTaint", timeoutMs: 3_000 },
          { strategy: "ResourceDeletion", timeoutMs: 3_000 },
        ],
      }),
    });
    try {
      const victim = await s.nodeOf("db-0");
      await s.fleet.crash(victim);
      await s.waitFor(`${victim} needs an operator`, () => s.latest(victim) === "operator", 60_000);
      const text = s.timeline(victim).join("\n");
      expect(text).toContain("operator required: every remediation in the escalation list failed");
      expect(text).toMatch(
        /pods\.delete failed: Kubernetes refused to delete pods\/db-0 in namespace operator \(403 Forbidden: .*system:serviceaccount:fenceline:fenceline-limited/,
      );
      expect(text).toContain('{ apiGroups: [""], resources: ["pods"], verbs: ["delete"] }');
      // The taint evicted db-0 but nothing could delete it: it is terminating on the dead node, running nowhere.
      expect((await s.pod("db-0"))!.spec.nodeName).toBe(victim);
      expect(s.runningOn("db-0")).toEqual([]);
      expect(((await s.node(victim)).spec?.taints ?? []).map((t: { key: string }) => t.key)).toContain("fenceline.io/fencing");
      expect(s.violations).toEqual([]);
    } finally {
      await s.stop();
    }
  }, 240_000);

  // The condition detector on what the real node lifecycle controller writes: a kubelet that
  // stops (its machine and agent fine) lets its Lease expire; after --node-monitor-grace-period
  // (50 s, the default) the controller sets Ready=Unknown ("Kubelet stopped posting node
  // status.") and taints the node unreachable; that is Fenceline's signal.
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
      const ready = (
        (await s.node(victim)).status.conditions as Array<{ type: string; status: string; reason: string; message: string }>
      ).find((c) => c.type === "Ready")!;
      expect(ready).toMatchObject({ status: "Unknown", reason: "NodeStatusUnknown", message: "Kubelet stopped posting node status." });
      await s.waitFor("the controller's unreachable taint", async () =>
        (((await s.node(victim)).spec?.taints ?? []) as Array<{ key: string; effect: string }>).some(
          (t) => t.key === "node.kubernetes.io/unreachable" && t.effect === "NoSchedule",
        ),
      );
      // The agent still heartbeats: fencing asks it to stop feeding its watchdog, which resets the machine.
      await s.waitFor(
        `${victim} back with a new boot and healthy`,
        () => s.latest(victim) === "healthy" && s.fleet.status(victim).resets > 0,
        90_000,
      );
      await s.waitFor(
        "Ready again, the condition cleared",
        () => s.audit.some((r) => r.node === victim && r.event.type === "signal.healthy" && r.seq > signal.seq),
        60_000,
      );
      await s.waitFor(`${victim}'s taints removed`, async () => ((await s.node(victim)).spec?.taints ?? []).length === 0, 60_000);
      expect(s.timeline(victim).join("\n")).toContain("fencing confirmed: reboot");
      expect(s.violations).toEqual([]);
      process.stderr.write(`conditions.test: kubelet stopped → Ready=Unknown signal after ${(after / 1000).toFixed(1)} s\n`);
    } finally {
      await s.stop();
    }
  }, 300_000);
});

/** A pod on the fleet that tolerates the out-of-service taint for an hour (the taint cannot evict it in time). */
async function lingeringPod(admin: KubeClient, namespace: string, fleet: string) {
  await admin.create(`/api/v1/namespaces/${namespace}/pods`, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "lingering", namespace, labels: { app: "lingering" } },
    spec: {
      nodeSelector: { "kube-lab.fenceline.io/fleet": fleet },
      tolerations: [{ key: "node.kubernetes.io/out-of-service", operator: "Exists", effect: "NoExecute", tolerationSeconds: 3600 }],
      containers: [{ name: "app", image: "registry.invalid/fenceline/app:1" }],
    },
  });
}

/** The engine's ClusterRole without pods delete, bound to its own ServiceAccount; a kubeconfig with its token. */
async function limitedKubeconfig(admin: KubeClient): Promise<string> {
  const role = (await admin.get("/apis/rbac.authorization.k8s.io/v1/clusterroles/fenceline-engine")) as KubeObject & {
    rules: Array<{ resources?: string[]; verbs: string[] }>;
  };
  const rules = role.rules.map((r) => (r.resources?.includes("pods") ? { ...r, verbs: r.verbs.filter((v) => v !== "delete") } : r));
  const create = async (path: string, body: unknown) =>
    admin.create(path, body).catch((err: { status?: number }) => {
      if (err.status !== 409) throw err;
    });
  await create("/apis/rbac.authorization.k8s.io/v1/clusterroles", {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name: "fenceline-limited" },
    rules,
  });
  await create("/api/v1/namespaces/fenceline/serviceaccounts", {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name: "fenceline-limited", namespace: "fenceline" },
  });
  await create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name: "fenceline-limited" },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "fenceline-limited" },
    subjects: [{ kind: "ServiceAccount", name: "fenceline-limited", namespace: "fenceline" }],
  });
  return writeKubeconfig(inject("kubeTest").kube, "fenceline-limited", await serviceAccountToken(admin, "fenceline", "fenceline-limited"));
}
