import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, inject, it } from "vitest";
import { isRunningAndReady, listPods, type KubeObject } from "@fenceline/kube-lab";
import { startRealK8s, testPolicy, type RealK8s } from "./harness.js";

const run = promisify(execFile);

/** The VolumeAttachments of a volume (API view): node and attached. */
async function attachmentsOf(s: RealK8s, volume: string) {
  const vas = await s.admin.list("/apis/storage.k8s.io/v1/volumeattachments");
  return vas.items.filter((va) => va.spec?.source?.persistentVolumeName === volume).map((va) => ({ node: va.spec.nodeName as string, attached: va.status?.attached === true }));
}

/** db-0 Running and Ready on another node than `victim`, running there (and only there) in truth, its volume attached there. */
async function replicaMovedOff(s: RealK8s, victim: string, replica = "db-0") {
  const pod = await s.pod(replica);
  if (!pod || !isRunningAndReady(pod) || pod.spec.nodeName === victim) return false;
  const truth = s.runningOn(replica);
  if (truth.length !== 1 || truth[0] !== pod.spec.nodeName) return false;
  const volume = `${s.namespace}-db-${replica.split("-").pop()}`;
  const vas = await attachmentsOf(s, volume);
  const backend = s.machines.volumeAttachments().filter((a) => a.volume === volume).map((a) => a.node);
  return vas.length === 1 && vas[0]!.node === pod.spec.nodeName && vas[0]!.attached && backend.length === 1 && backend[0] === pod.spec.nodeName;
}

const deploymentReady = async (s: RealK8s, victim: string) => {
  const web = await listPods(s.admin, s.namespace, "web");
  return web.filter((p) => isRunningAndReady(p) && p.spec.nodeName !== victim).length === 2;
};

/** The machine is powered on again; it rejoins and every taint comes off its Node. */
async function rejoins(s: RealK8s, victim: string) {
  await s.fleet.crash(victim, 100);
  await s.waitFor(`${victim} rejoined`, () => s.latest(victim) === "healthy" && s.timeline(victim).some((l) => l.includes("rejoined")), 60_000);
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
    const s = await startRealK8s({ name: "oos-crash", daemonSet: true, staticPods: true, policy: testPolicy({ remediation: [{ strategy: "OutOfServiceTaint", timeoutMs: 20_000 }] }) });
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
      await s.waitFor("the remediation to finish", () => s.timeline(victim).some((l) => l.includes("workloads moved off the node (OutOfServiceTaint)")));
      const text = s.timeline(victim).join("\n");
      expect(text.indexOf("fencing confirmed")).toBeGreaterThan(0);
      expect(text.indexOf("fencing confirmed")).toBeLessThan(text.indexOf("remediation step 1/1: OutOfServiceTaint"));
      // The DaemonSet's pod and the static pod's mirror stay on the fenced node, as they should.
      const left = (await listPods(s.admin, s.namespace)).filter((p) => p.spec.nodeName === victim).map((p: KubeObject) => p.metadata.name);
      expect(left.some((n) => n.startsWith("node-agent-"))).toBe(true);
      expect(left).toContain(`static-agent-${victim}`);
      expect(left.some((n) => n.startsWith("db-") || n.startsWith("web-"))).toBe(false);
      process.stderr.write(`remediation.test: crash → db-0 running and ready elsewhere in ${seconds(movedAfter)} (OutOfServiceTaint, safe time ${seconds(4_000)})\n`);

      await rejoins(s, victim);
      // The story on the Node object, as kubectl describe node shows it.
      const awaitedUid = (await s.node(victim)).metadata.uid;
      const { stdout } = await run("kubectl", ["--kubeconfig", inject("kubeTest").kube.kubeconfig, "describe", "node", victim]);
      const story = ["FencingStarted", "FencingConfirmed", "RemediationStarted", "WorkloadsMoved", "Reprovisioning", "Rejoined"];
      for (const reason of story) expect(stdout).toMatch(new RegExp(`(Warning|Normal)\\s+${reason}\\s+\\S+\\s+fenceline`));
      // In order, on the Node object (regarding: the node's uid, as kubectl looks them up).
      const events = (await s.admin.list("/apis/events.k8s.io/v1/namespaces/default/events")).items
        .filter((e) => e.regarding?.name === victim && e.reportingController === "fenceline.io/engine")
        .sort((a, b) => String(a.eventTime).localeCompare(String(b.eventTime)));
      expect(events.map((e) => e.reason)).toEqual(story);
      expect(events.every((e) => e.regarding.uid === (awaitedUid ?? e.regarding.uid))).toBe(true);
      // Never twice, at any moment.
      expect(s.violations).toEqual([]);
      expect(s.runningOn("db-0")).toHaveLength(1);
      expect((await s.node(victim)).spec?.taints ?? []).toEqual([]);
    } finally {
      await s.stop();
    }
  }, 240_000);
});
