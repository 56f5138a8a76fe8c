import { describe, expect, it } from "vitest";
import { FENCING_TAINT, OUT_OF_SERVICE_TAINT, isFencelineError, type Taint } from "@fenceline/contracts";
import { InMemoryCluster, VirtualClock } from "../src/index.js";
import { createFixture, detachAll } from "./fixture.js";

describe("InMemoryCluster: placement and the ClusterApi", () => {
  it("places workloads least-loaded first, ties by name, and runs them with their volumes", () => {
    const { cluster, tick } = createFixture();
    cluster.addStatefulSet("web", 2);
    cluster.addDeployment("api", 2);
    tick();
    expect(cluster.pods().map((p) => [p.name, p.node, p.phase])).toEqual([
      ["web-0", "node-a", "Running"],
      ["web-1", "node-b", "Running"],
      ["api-0", "node-c", "Running"],
      ["api-1", "node-a", "Running"],
    ]);
    expect(cluster.containers().map((c) => `${c.pod}@${c.node}`)).toEqual(["web-0@node-a", "api-1@node-a", "web-1@node-b", "api-0@node-c"]);
    expect(cluster.volumeAttachments().map((va) => `${va.volume}@${va.node}`)).toEqual(["data-web-0@node-a", "data-web-1@node-b"]);
    expect(cluster.replicas().map((r) => [r.replica, r.runningOn, r.downSince])).toEqual([
      ["web-0", ["node-a"], undefined],
      ["web-1", ["node-b"], undefined],
    ]);
  });

  it("adds and removes taints idempotently, and a NoSchedule taint keeps new pods away", async () => {
    const { cluster, tick } = createFixture();
    await cluster.addTaint("node-a", FENCING_TAINT);
    await cluster.addTaint("node-a", { ...FENCING_TAINT });
    expect(cluster.node("node-a")?.taints).toEqual([FENCING_TAINT]);
    expect(cluster.events().filter((e) => e.kind === "taint.added")).toHaveLength(1);

    cluster.addStatefulSet("web", 1);
    tick();
    expect(cluster.pod("web-0")?.node).toBe("node-b");

    await cluster.removeTaint("node-a", FENCING_TAINT);
    await cluster.removeTaint("node-a", FENCING_TAINT);
    await cluster.removeTaint("no-such-node", FENCING_TAINT);
    expect(cluster.node("node-a")?.taints).toEqual([]);
    expect(cluster.events().filter((e) => e.kind === "taint.removed")).toHaveLength(1);
  });

  it("a taint with the same key and effect but another value replaces the old one", async () => {
    const { cluster } = createFixture();
    await cluster.addTaint("node-a", OUT_OF_SERVICE_TAINT);
    await cluster.addTaint("node-a", { ...OUT_OF_SERVICE_TAINT, value: "hardwarefailure" });
    expect(cluster.node("node-a")?.taints).toEqual([{ ...OUT_OF_SERVICE_TAINT, value: "hardwarefailure" }]);
  });

  it("adding a taint to an unknown node fails with NOT_FOUND; deleting on it finds nothing", async () => {
    const { cluster } = createFixture();
    const err = await cluster.addTaint("ghost", FENCING_TAINT).catch((e: unknown) => e);
    expect(isFencelineError(err, "NOT_FOUND")).toBe(true);
    expect(await cluster.deletePods("ghost")).toBe(0);
    expect(detachAll(cluster, "ghost")).toBe(0);
  });

  it("serverVersion defaults to 1.30 and is configurable", async () => {
    const clock = new VirtualClock();
    expect(await new InMemoryCluster({ clock }).serverVersion()).toBe("1.30");
    expect(await new InMemoryCluster({ clock, serverVersion: "1.27" }).serverVersion()).toBe("1.27");
  });

  it("counts a node's pods and VolumeAttachments, and deletes are idempotent", async () => {
    const { cluster, tick } = createFixture();
    cluster.addStatefulSet("web", 1);
    cluster.addDeployment("api", 3);
    tick();
    expect(await cluster.countWorkloads("node-a")).toEqual({ pods: 2, volumeAttachments: 1 });
    cluster.crash("node-a");
    expect(await cluster.deletePods("node-a")).toBe(2);
    expect(await cluster.deletePods("node-a")).toBe(0);
    expect(detachAll(cluster, "node-a")).toBe(1);
    expect(detachAll(cluster, "node-a")).toBe(0);
    expect(await cluster.countWorkloads("node-a")).toEqual({ pods: 0, volumeAttachments: 0 });
  });

  it("rejects every API call while the API server is unavailable", async () => {
    const { cluster } = createFixture();
    cluster.setApiAvailable(false);
    await expect(cluster.addTaint("node-a", FENCING_TAINT)).rejects.toThrow(/unavailable/);
    await expect(cluster.deletePods("node-a")).rejects.toThrow(/unavailable/);
    cluster.setApiAvailable(true);
    await cluster.addTaint("node-a", FENCING_TAINT);
  });
});

describe("InMemoryCluster: remediation paths", () => {
  it("force-delete moves a StatefulSet replica, whose volume attaches only once the old VolumeAttachment is gone", async () => {
    const { cluster, tick, runFor, podOf, containersOf, violations } = createFixture();
    cluster.addStatefulSet("web", 1);
    tick();
    const original = podOf("web-0")!;
    expect(original.node).toBe("node-a");

    cluster.crash("node-a");
    expect(containersOf("web-0")).toEqual([]);
    // Without a NoSchedule taint the scheduler would bind the replacement to the crashed node
    // again: for the API it stays Ready until the node monitor grace period passes.
    await cluster.addTaint("node-a", FENCING_TAINT);
    expect(await cluster.deletePods("node-a")).toBe(1);
    tick();
    const replacement = podOf("web-0")!;
    expect(replacement.node).toBe("node-b");
    expect(replacement.uid).not.toBe(original.uid);
    expect(replacement.phase).toBe("Pending");
    runFor(60_000);
    expect(podOf("web-0")?.phase).toBe("Pending");
    expect(containersOf("web-0")).toEqual([]);
    expect(cluster.volumeAttachments()).toEqual([expect.objectContaining({ volume: "data-web-0", node: "node-a" })]);
    expect(cluster.events().filter((e) => e.kind === "volume.attach-refused")).toHaveLength(1);

    expect(detachAll(cluster, "node-a")).toBe(1);
    tick();
    expect(podOf("web-0")?.phase).toBe("Running");
    expect(containersOf("web-0").map((c) => c.node)).toEqual(["node-b"]);
    expect(cluster.volumeAttachments().map((va) => va.node)).toEqual(["node-b"]);
    expect(violations).toEqual([]);
  });

  it("the attach-detach controller force-detaches from an unresponsive node after its unmount timeout", async () => {
    const { cluster, tick, runFor, podOf } = createFixture({ forceDetachTimeoutMs: 30_000 });
    cluster.addStatefulSet("web", 1);
    tick();
    cluster.powerOff("node-a");
    await cluster.addTaint("node-a", { key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" }); // as a remediator would: else the replacement lands on the same node, still Ready
    await cluster.deletePods("node-a");
    runFor(29_000);
    expect(podOf("web-0")?.phase).toBe("Pending");
    runFor(2_000);
    expect(podOf("web-0")).toMatchObject({ node: "node-b", phase: "Running" });
    expect(cluster.events().some((e) => e.kind === "volume.force-detached")).toBe(true);
  });

  it("a graceful delete on an unreachable node stays Terminating forever; the out-of-service taint releases it", async () => {
    const { cluster, tick, runFor, podOf, containersOf, violations } = createFixture();
    cluster.addStatefulSet("web", 1);
    tick();
    cluster.powerOff("node-a");
    cluster.requestPodDeletion("web-0");
    runFor(3_600_000);
    expect(podOf("web-0")).toMatchObject({ node: "node-a", phase: "Terminating", deletionRequestedAt: 1_000 });
    expect(containersOf("web-0")).toEqual([]);
    expect(cluster.volumeAttachments().map((va) => va.node)).toEqual(["node-a"]);

    await cluster.addTaint("node-a", OUT_OF_SERVICE_TAINT);
    // Pod GC runs every 20 s.
    runFor(20_000);
    expect(podOf("web-0")).toMatchObject({ node: "node-b", phase: "Running" });
    expect(cluster.volumeAttachments().map((va) => va.node)).toEqual(["node-b"]);
    const kinds = cluster.events().map((e) => e.kind);
    expect(kinds).toContain("pod.force-deleted");
    expect(kinds).toContain("volume.force-detached");
    expect(violations).toEqual([]);
  });

  it("the out-of-service taint evicts every pod of a powered-off node; Pod GC deletes them only once the node is NotReady", async () => {
    const { cluster, tick, runFor, podOf } = createFixture();
    cluster.addStatefulSet("web", 1);
    cluster.addDeployment("api", 1);
    cluster.addDaemonSet("agent");
    tick();
    cluster.powerOff("node-a");
    await cluster.addTaint("node-a", OUT_OF_SERVICE_TAINT);
    tick();
    expect(podOf("web-0")).toMatchObject({ node: "node-a", phase: "Terminating" });
    // The DaemonSet's pod tolerates every taint: it stays.
    expect(podOf("agent-node-a")).toMatchObject({ node: "node-a", phase: "Running" });
    // Ready for the API until the 50 s node monitor grace period passes; Pod GC runs every 20 s.
    runFor(45_000);
    expect(podOf("web-0")).toMatchObject({ node: "node-a", phase: "Terminating" });
    runFor(25_000);
    expect(podOf("web-0")).toMatchObject({ node: "node-c", phase: "Running" });
    expect(
      cluster
        .pods()
        .filter((p) => p.node === "node-a")
        .map((p) => p.name),
    ).toEqual(["agent-node-a"]);
  });

  it("deleteEvictedPods finishes what the out-of-service taint evicted at once (what Fenceline does once fenced)", async () => {
    const { cluster, tick, podOf } = createFixture();
    cluster.addStatefulSet("web", 1);
    cluster.addDaemonSet("agent");
    tick();
    cluster.powerOff("node-a");
    await cluster.addTaint("node-a", FENCING_TAINT);
    expect(await cluster.deleteEvictedPods("node-a")).toBe(0);
    await cluster.addTaint("node-a", OUT_OF_SERVICE_TAINT);
    tick();
    expect(await cluster.countWorkloads("node-a")).toEqual({ pods: 1, volumeAttachments: 1 });
    expect(await cluster.deleteEvictedPods("node-a")).toBe(1);
    tick();
    expect(podOf("web-0")).toMatchObject({ node: "node-b", phase: "Running" });
    expect(await cluster.countWorkloads("node-a")).toEqual({ pods: 0, volumeAttachments: 0 });
  });

  it("a graceful delete on a healthy node is finished by its kubelet and the replica is re-created", () => {
    const { cluster, tick, podOf } = createFixture();
    cluster.addStatefulSet("web", 1);
    tick();
    const uid = podOf("web-0")!.uid;
    cluster.requestPodDeletion("web-0");
    expect(podOf("web-0")?.phase).toBe("Terminating");
    tick();
    expect(podOf("web-0")).toMatchObject({ phase: "Running" });
    expect(podOf("web-0")?.uid).not.toBe(uid);
    expect(cluster.events().map((e) => e.kind)).toContain("pod.deleted");
  });

  it("with node lifecycle eviction on, a Deployment is replaced and a StatefulSet stays stuck (plain Kubernetes)", () => {
    const { cluster, tick, runFor, podOf } = createFixture({ unreachableEvictionMs: 340_000 });
    cluster.addStatefulSet("web", 1);
    cluster.addDeployment("api", 1);
    tick();
    expect(podOf("api-0")?.node).toBe("node-b");
    cluster.setReachable("node-a", false);
    cluster.setReachable("node-b", false);
    runFor(339_000);
    expect(podOf("api-0")?.phase).toBe("Running");
    runFor(2_000);
    expect(podOf("api-0")?.phase).toBe("Terminating");
    expect(podOf("api-1")).toMatchObject({ node: "node-c", phase: "Running" });
    runFor(3_600_000);
    expect(podOf("web-0")).toMatchObject({ node: "node-a", phase: "Terminating" });
  });
});

describe("InMemoryCluster: faults", () => {
  it("crash then boot: containers stop, the API still says Running, and they restart on boot", () => {
    const { cluster, tick, runFor, podOf, containersOf } = createFixture();
    cluster.addStatefulSet("web", 1);
    tick();
    const uid = podOf("web-0")!.uid;
    cluster.crash("node-a");
    expect(cluster.node("node-a")).toMatchObject({ power: "on", crashed: true, kubeletRunning: false });
    expect(containersOf("web-0")).toEqual([]);
    runFor(10_000);
    expect(podOf("web-0")).toMatchObject({ node: "node-a", phase: "Running", uid });
    expect(cluster.replicas()[0]?.downSince).toBe(1_000);

    cluster.boot("node-a", "boot-2");
    expect(cluster.node("node-a")).toMatchObject({ crashed: false, kubeletRunning: true, bootId: "boot-2" });
    tick();
    expect(containersOf("web-0")).toEqual([expect.objectContaining({ node: "node-a", uid })]);
    expect(cluster.replicas()[0]?.downSince).toBeUndefined();
  });

  it("a node rebooting after remediation does not restart the pods whose objects were deleted", async () => {
    const { cluster, tick, podOf, containersOf, violations } = createFixture();
    cluster.addStatefulSet("web", 1);
    cluster.addDeployment("api", 1);
    tick();
    cluster.powerOff("node-a");
    await cluster.addTaint("node-a", FENCING_TAINT);
    await cluster.deletePods("node-a");
    detachAll(cluster, "node-a");
    tick();
    expect(podOf("web-0")?.node).toBe("node-c");

    cluster.boot("node-a");
    expect(cluster.node("node-a")?.bootId).toBe("node-a-boot-2");
    tick();
    expect(containersOf("web-0").map((c) => c.node)).toEqual(["node-c"]);
    expect(cluster.containers().filter((c) => c.node === "node-a")).toEqual([]);
    expect(violations).toEqual([]);
  });

  it("an unreachable node keeps its containers running, and stops them once it hears they were deleted", async () => {
    const { cluster, tick, runFor, podOf, containersOf, violations } = createFixture();
    cluster.addStatefulSet("web", 1);
    tick();
    cluster.setReachable("node-a", false);
    await cluster.addTaint("node-a", { key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" }); // as a remediator would: else the replacement lands on the same node, still Ready
    await cluster.deletePods("node-a");
    runFor(60_000);
    expect(containersOf("web-0").map((c) => c.node)).toEqual(["node-a"]);
    expect(podOf("web-0")).toMatchObject({ node: "node-b", phase: "Pending" });

    cluster.setReachable("node-a", true);
    tick();
    expect(containersOf("web-0").map((c) => c.node)).toEqual(["node-b"]);
    expect(cluster.volumeAttachments().map((va) => va.node)).toEqual(["node-b"]);
    expect(violations).toEqual([]);
  });

  it("a node that boots while cut off from the API server starts none of its pods until it reaches it", () => {
    // Regular pods are not kept on the node: after a reboot the kubelet learns its pods only from
    // the API server (static pods, from its manifest directory, are the exception).
    const { cluster, tick, runFor, podOf, containersOf } = createFixture();
    cluster.addStatefulSet("web", 1);
    tick();
    const uid = podOf("web-0")!.uid;
    cluster.setReachable("node-a", false);
    cluster.crash("node-a");
    cluster.boot("node-a", "boot-2");
    runFor(10_000);
    expect(containersOf("web-0")).toEqual([]);
    cluster.setReachable("node-a", true);
    tick();
    expect(containersOf("web-0")).toEqual([expect.objectContaining({ node: "node-a", uid })]);
  });

  it("a rebooted kubelet that reaches the API server honours a NoExecute taint (out-of-service) but not a NoSchedule one (fencing)", async () => {
    // The kubelet's admission rejects a pod only for an untolerated NoExecute taint
    // (pkg/kubelet/lifecycle/predicate.go: "Kubelet is only interested in the NoExecute taint").
    /** web-0's node crashes cut off, gets `taint`, boots and reaches the API server again. */
    const rebootedWith = async (taint: Taint) => {
      const f = createFixture();
      f.cluster.addStatefulSet("web", 1);
      f.tick();
      f.cluster.setReachable("node-a", false);
      f.cluster.crash("node-a");
      await f.cluster.addTaint("node-a", taint);
      f.cluster.boot("node-a", "boot-2");
      f.cluster.setReachable("node-a", true);
      f.tick();
      return f;
    };
    const a = await rebootedWith(FENCING_TAINT);
    expect(a.containersOf("web-0").map((c) => c.node)).toEqual(["node-a"]);
    const b = await rebootedWith(OUT_OF_SERVICE_TAINT);
    expect(b.containersOf("web-0").filter((c) => c.node === "node-a")).toEqual([]);
  });

  it("a stopped kubelet leaves its containers running", () => {
    const { cluster, tick, containersOf } = createFixture();
    cluster.addStatefulSet("web", 1);
    tick();
    cluster.stopKubelet("node-a");
    tick();
    expect(containersOf("web-0").map((c) => c.node)).toEqual(["node-a"]);
    cluster.startKubelet("node-a");
    tick();
    expect(containersOf("web-0").map((c) => c.node)).toEqual(["node-a"]);
  });

  it("logs every change with its time, and the same scenario gives the same log", async () => {
    const scenario = async (): Promise<string> => {
      const { cluster, tick, runFor } = createFixture({ forceDetachTimeoutMs: 5_000 });
      cluster.addStatefulSet("web", 2);
      cluster.addDeployment("api", 3);
      tick();
      cluster.setReachable("node-b", false);
      await cluster.addTaint("node-b", { key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" }); // as a remediator would: else the replacement lands on the same node, still Ready
      await cluster.deletePods("node-b");
      runFor(10_000);
      cluster.setReachable("node-b", true);
      tick();
      return cluster.formatEvents();
    };
    const log = await scenario();
    expect(log).toContain("1000 node.unreachable node node-b unreachable");
    expect(log).toMatch(/^\d+ volume\.force-detached volume data-web-1 detached from node-b/m);
    expect(await scenario()).toBe(log);
  });
});
