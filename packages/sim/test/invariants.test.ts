import { describe, expect, it } from "vitest";
import { FENCING_TAINT, OUT_OF_SERVICE_TAINT } from "@fenceline/contracts";
import { RunningTracker, checkInvariants } from "../src/index.js";
import { createFixture, detachAll } from "./fixture.js";

const invariantsOf = (violations: readonly { invariant: string }[]) => [...new Set(violations.map((v) => v.invariant))].sort();

describe("checkInvariants", () => {
  it("a healthy cluster is ok and every replica runs", () => {
    const { cluster, tick, clock } = createFixture();
    cluster.addStatefulSet("web", 2);
    tick();
    const report = checkInvariants(cluster, clock.now());
    expect(report.ok).toBe(true);
    expect(report.downtime).toEqual([
      { replica: "web-0", workload: "web", downForMs: 0 },
      { replica: "web-1", workload: "web", downForMs: 0 },
    ]);
  });

  it("catches the double run of a buggy remediator that deletes pods and VolumeAttachments of an unfenced, partitioned node", async () => {
    const { cluster, tick, clock, containersOf } = createFixture();
    cluster.addStatefulSet("web", 1);
    tick();
    cluster.setReachable("node-a", false);
    // No fencing: the node is only unreachable, its containers still run.
    await cluster.addTaint("node-a", { key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" }); // as a remediator would: else the replacement lands on the same node, still Ready
    await cluster.deletePods("node-a");
    detachAll(cluster, "node-a");
    expect(checkInvariants(cluster, clock.now()).ok).toBe(true);
    tick();
    expect(
      containersOf("web-0")
        .map((c) => c.node)
        .sort(),
    ).toEqual(["node-a", "node-b"]);

    const report = checkInvariants(cluster, clock.now());
    expect(report.ok).toBe(false);
    expect(report.violations).toEqual([
      { invariant: "replica-runs-twice", detail: "web-0 runs 2 times, on node-a, node-b", at: 2_000 },
      {
        invariant: "volume-on-two-nodes",
        detail: "ReadWriteOnce volume data-web-0 on node-b (attached, in use), node-a (in use)",
        at: 2_000,
      },
    ]);
  });

  it("the same deletions after fencing (power off) never violate anything", async () => {
    const { cluster, tick, runFor, violations, podOf } = createFixture();
    cluster.addStatefulSet("web", 3);
    cluster.addDeployment("api", 3);
    tick();
    await cluster.addTaint("node-a", FENCING_TAINT);
    cluster.setReachable("node-a", false);
    runFor(10_000);
    cluster.powerOff("node-a");
    await cluster.deletePods("node-a");
    detachAll(cluster, "node-a");
    runFor(10_000);
    cluster.boot("node-a");
    cluster.setReachable("node-a", true);
    await cluster.removeTaint("node-a", FENCING_TAINT);
    runFor(10_000);
    expect(podOf("web-0")).toMatchObject({ node: "node-b", phase: "Running" });
    expect(violations).toEqual([]);
  });

  it("catches the double run that Kubernetes' 6-minute force-detach causes when only pods are deleted from a partitioned node", async () => {
    const { cluster, runFor, tick, violations } = createFixture();
    cluster.addStatefulSet("web", 1);
    tick();
    cluster.setReachable("node-a", false);
    await cluster.addTaint("node-a", { key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" }); // as a remediator would: else the replacement lands on the same node, still Ready
    await cluster.deletePods("node-a");
    runFor(359_000);
    expect(violations).toEqual([]);
    runFor(2_000);
    expect(invariantsOf(violations)).toEqual(["replica-runs-twice", "volume-on-two-nodes"]);
  });

  it("catches the double run of an out-of-service taint on a node that is not really shut down", async () => {
    const { cluster, tick, runFor, violations } = createFixture();
    cluster.addStatefulSet("web", 1);
    tick();
    cluster.setReachable("node-a", false);
    await cluster.addTaint("node-a", OUT_OF_SERVICE_TAINT);
    // Pod GC acts once the node is NotReady (50 s without its kubelet) on its 20 s period.
    runFor(75_000);
    expect(invariantsOf(violations)).toEqual(["replica-runs-twice", "volume-on-two-nodes"]);
  });

  it("records how long each replica has been without a running copy", async () => {
    const { cluster, tick, runFor, clock } = createFixture();
    cluster.addStatefulSet("web", 2);
    tick();
    cluster.crash("node-a");
    runFor(5_000);
    const down = checkInvariants(cluster, clock.now()).downtime;
    expect(down).toEqual([
      { replica: "web-0", workload: "web", downSince: 1_000, downForMs: 5_000 },
      { replica: "web-1", workload: "web", downForMs: 0 },
    ]);
    await cluster.addTaint("node-a", { key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" }); // as a remediator would: else the replacement lands on the same node, still Ready
    await cluster.deletePods("node-a");
    detachAll(cluster, "node-a");
    tick();
    expect(checkInvariants(cluster, clock.now()).downtime.every((d) => d.downForMs === 0)).toBe(true);
  });
});

describe("RunningTracker", () => {
  it("records when the failed node's stateful replicas run again elsewhere", async () => {
    const { cluster, tick, runFor, clock } = createFixture();
    const tracker = new RunningTracker(cluster);
    cluster.addStatefulSet("web", 3);
    cluster.addDeployment("api", 1);
    tick();
    cluster.addStatefulSet("db", 1);
    tick();
    expect(cluster.pod("db-0")?.node).toBe("node-b");

    tracker.markFailed("node-a", clock.now());
    tracker.markFailed("node-c", clock.now());
    cluster.crash("node-a");
    runFor(20_000);
    expect(tracker.recoveredAt("node-a")).toBeUndefined();
    await cluster.addTaint("node-a", { key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" }); // as a remediator would: else the replacement lands on the same node, still Ready
    await cluster.deletePods("node-a");
    detachAll(cluster, "node-a");
    tick();
    expect(tracker.recoveredAt("node-a")).toBe(23_000);
    expect(tracker.recovery("node-a")).toEqual({ node: "node-a", failedAt: 2_000, replicas: ["web-0"], recoveredAt: 23_000 });
    expect(tracker.recovery("node-c")?.replicas).toEqual(["web-2"]);
    expect(tracker.recoveredAt("node-c")).toBeUndefined();

    tracker.dispose();
    cluster.crash("node-c");
    await cluster.addTaint("node-c", { key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" }); // as a remediator would: else the replacement lands on the same node, still Ready
    await cluster.deletePods("node-c");
    detachAll(cluster, "node-c");
    tick();
    expect(tracker.recoveredAt("node-c")).toBeUndefined();
    expect(tracker.recoveredAt("node-b")).toBeUndefined();
  });

  it("a node without stateful replicas counts as recovered when it failed", () => {
    const { cluster, tick } = createFixture();
    const tracker = new RunningTracker(cluster);
    cluster.addDeployment("api", 3);
    tick();
    tracker.markFailed("node-a", 1_000);
    expect(tracker.recoveredAt("node-a")).toBe(1_000);
  });
});
