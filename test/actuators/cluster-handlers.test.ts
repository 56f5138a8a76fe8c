import { FENCING_TAINT, OUT_OF_SERVICE_TAINT } from "@fenceline/contracts";
import { describe, expect, it } from "vitest";
import { createActuator, createClusterHandlers } from "@fenceline/actuators";
import { InMemoryCluster } from "@fenceline/sim";
import { VirtualClock } from "@fenceline/testing";
// Here, not in packages/actuators/test: the simulator's cluster model depends on the actuators.
import { command, resultOf } from "../../packages/actuators/test/helpers.js";

const POLL_MS = 250;

/** n1 runs a StatefulSet of two replicas (two pods, two VolumeAttachments) unless told otherwise; n2 is empty. */
function setup(options: { serverVersion?: string; replicas?: number } = {}) {
  const { replicas = 2, ...clusterOptions } = options;
  const clock = new VirtualClock(0);
  const cluster = new InMemoryCluster({ clock, nodes: ["n1"], ...clusterOptions });
  cluster.addStatefulSet("db", replicas);
  for (let i = 0; i < 3; i++) {
    clock.advance(1_000);
    cluster.step();
  }
  cluster.addNode("n2");
  let progressed = 0;
  const handlers = createClusterHandlers(cluster, clock, { pollMs: POLL_MS });
  const actuator = createActuator({ name: "cluster", handlers, clock });
  const run = (c: Parameters<typeof actuator.execute>[0]) => actuator.execute(c, { progress: () => progressed++ });
  return { clock, cluster, actuator, run, progressed: () => progressed };
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Lets a promise that waits on the virtual clock run to completion, advancing `stepMs` at a time. */
async function drive<T>(clock: VirtualClock, promise: Promise<T>, stepMs: number, onStep: (now: number) => void = () => {}): Promise<T> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 10_000; i++) {
    await flush();
    if (settled) return promise;
    clock.advance(stepMs);
    onStep(clock.now());
  }
  throw new Error("did not settle");
}

const taintsOf = (cluster: InMemoryCluster, node: string) => cluster.node(node)!.taints.map((t) => `${t.key}=${t.value ?? ""}:${t.effect}`);

describe("cluster handlers over InMemoryCluster", () => {
  it("adds and removes taints idempotently", async () => {
    const { cluster, run } = setup();
    for (let i = 0; i < 2; i++) {
      const added = resultOf(await run(command("taint.add", { taint: FENCING_TAINT })));
      expect(added.data).toMatchObject({ ok: true, output: "taint fenceline.io/fencing:NoSchedule added" });
    }
    resultOf(await run(command("taint.add", { taint: OUT_OF_SERVICE_TAINT })));
    expect(taintsOf(cluster, "n1")).toEqual([
      "fenceline.io/fencing=:NoSchedule",
      "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute",
    ]);

    for (let i = 0; i < 2; i++) {
      const removed = resultOf(await run(command("taint.remove", { taint: FENCING_TAINT })));
      expect(removed.data).toMatchObject({ ok: true, output: "taint fenceline.io/fencing:NoSchedule removed" });
    }
    expect(taintsOf(cluster, "n1")).toEqual(["node.kubernetes.io/out-of-service=nodeshutdown:NoExecute"]);
    expect(taintsOf(cluster, "n2")).toEqual([]);
  });

  it("reports a taint on an unknown node as a failure, not a crash", async () => {
    const { run } = setup();
    const result = resultOf(await run(command("taint.add", { taint: FENCING_TAINT }, { node: "ghost" })));
    expect(result.data.ok).toBe(false);
    expect(result.data.reason).toContain("ghost");
  });

  it("force-deletes the node's pods but not the DaemonSet's, and leaves VolumeAttachments to the attach-detach controller", async () => {
    const { cluster, run, clock } = setup();
    cluster.addDaemonSet("agent");
    clock.advance(1_000);
    cluster.step();
    expect(await cluster.countWorkloads("n1")).toEqual({ pods: 2, volumeAttachments: 2 });

    const pods = resultOf(await run(command("pods.delete", {})));
    expect(pods.data).toMatchObject({ ok: true, output: "2 pods force-deleted", facts: { deleted: 2 } });
    expect(
      cluster
        .pods()
        .filter((p) => p.node === "n1")
        .map((p) => p.name),
    ).toEqual(["agent-n1"]);
    expect(await cluster.countWorkloads("n1")).toEqual({ pods: 0, volumeAttachments: 2 });

    // Again: nothing left, still a success.
    expect(resultOf(await run(command("pods.delete", {}))).data).toMatchObject({ output: "0 pods force-deleted", facts: { deleted: 0 } });
  });

  it("workloads.await-gone succeeds at once when nothing is left", async () => {
    const { run } = setup();
    const result = resultOf(await run(command("workloads.await-gone", { timeoutMs: 5_000 }, { node: "n2", now: 3_000 })));
    expect(result.data).toMatchObject({ ok: true, facts: { gone: true } });
  });

  it("workloads.await-gone force-deletes what the out-of-service taint evicted and succeeds once it and its volumes are gone", async () => {
    const { clock, cluster, run, progressed } = setup();
    cluster.addDaemonSet("agent");
    cluster.powerOff("n1");
    const pending = run(command("workloads.await-gone", { timeoutMs: 10_000 }, { now: clock.now() }));
    const started = clock.now();
    let tainted = false;
    const result = resultOf(
      await drive(clock, pending, POLL_MS, (now) => {
        if (!tainted && now - started >= 2_000) {
          tainted = true;
          void cluster.addTaint("n1", OUT_OF_SERVICE_TAINT);
        }
        cluster.step(now);
      }),
    );
    expect(result.data).toMatchObject({
      ok: true,
      output: "no pods that must move and none of their VolumeAttachments left (2 evicted pods force-deleted)",
      facts: { gone: true, deleted: 2 },
    });
    // Long before Pod GC would have (the node is not NotReady for 50 s).
    expect(clock.now() - started).toBeLessThan(2_000 + 3 * POLL_MS);
    expect(
      cluster
        .pods()
        .filter((p) => p.node === "n1")
        .map((p) => p.name),
    ).toEqual(["agent-n1"]);
    // It told the consumer it is still working on every poll.
    expect(progressed()).toBeGreaterThanOrEqual(2_000 / POLL_MS);
  });

  it("workloads.await-gone fails at its timeout when something is left", async () => {
    const { clock, cluster, run } = setup();
    await cluster.deletePods("n1"); // the VolumeAttachments stay (no out-of-service taint, no force-detach in 3 s)
    const pending = run(command("workloads.await-gone", { timeoutMs: 3_000 }, { now: clock.now() }));
    const started = clock.now();
    const result = resultOf(await drive(clock, pending, POLL_MS));
    expect(result.data.ok).toBe(false);
    expect(result.data.reason).toBe("0 pods that must move and 2 VolumeAttachments still there after 3000 ms");
    expect(clock.now() - started).toBeGreaterThanOrEqual(3_000);
    expect(clock.now() - started).toBeLessThanOrEqual(3_000 + POLL_MS);
  });

  it("counts one pod and one VolumeAttachment in the singular", async () => {
    const { clock, run } = setup({ replicas: 1 });
    const pending = run(command("workloads.await-gone", { timeoutMs: 1_000 }, { now: clock.now() }));
    const result = resultOf(await drive(clock, pending, POLL_MS));
    expect(result.data.reason).toBe("1 pod that must move and 1 VolumeAttachment still there after 1000 ms");
  });

  it("cluster.version returns the server version as a fact", async () => {
    const { run } = setup({ serverVersion: "1.27" });
    const result = resultOf(await run(command("cluster.version", {})));
    expect(result.data).toMatchObject({ ok: true, facts: { serverVersion: "1.27" } });
  });

  it("reports an unavailable API server as a failure with its reason", async () => {
    const { cluster, run } = setup();
    cluster.setApiAvailable(false);
    for (const c of [command("pods.delete", {}), command("cluster.version", {}), command("taint.add", { taint: FENCING_TAINT })]) {
      const result = resultOf(await run(c));
      expect(result.data.ok).toBe(false);
      expect(result.data.reason).toBeTruthy();
    }
  });
});
