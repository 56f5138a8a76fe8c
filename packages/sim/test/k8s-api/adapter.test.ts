import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ErrorCode, FENCING_TAINT, OUT_OF_SERVICE_TAINT, isFencelineError } from "@fenceline/contracts";
import { checkInvariants } from "../../src/index.js";
import { startApiFixture, type ApiFixture } from "./helpers.js";

/** The production adapter (@fenceline/kubernetes) against the simulated API server, over HTTP. */
describe("Kubernetes adapter against the simulated API server", () => {
  let f: ApiFixture;
  beforeEach(async () => {
    f = await startApiFixture();
  });
  afterEach(async () => {
    await f.stop();
  });

  const nodeOf = (pod: string) => f.cluster.pod(pod)!.node;

  it("adds a taint once, keeps other taints, and removes it; both are idempotent", async () => {
    await f.adapter.addTaint("node-a", FENCING_TAINT);
    await f.adapter.addTaint("node-a", FENCING_TAINT);
    await f.adapter.addTaint("node-a", OUT_OF_SERVICE_TAINT);
    expect(f.cluster.node("node-a")!.taints).toEqual([FENCING_TAINT, OUT_OF_SERVICE_TAINT]);
    const patches = f.server.requests.filter((r) => r.method === "PATCH");
    expect(patches).toHaveLength(2);

    // Removal in reverse order of addition; removing what is gone succeeds without a patch.
    await f.adapter.removeTaint("node-a", OUT_OF_SERVICE_TAINT);
    await f.adapter.removeTaint("node-a", OUT_OF_SERVICE_TAINT);
    expect(f.cluster.node("node-a")!.taints).toEqual([FENCING_TAINT]);
    await f.adapter.removeTaint("node-a", FENCING_TAINT);
    expect(f.cluster.node("node-a")!.taints).toEqual([]);
    expect(f.server.requests.filter((r) => r.method === "PATCH")).toHaveLength(4);
    // A node that does not exist has no taint to remove; adding one to it is NotFound.
    await f.adapter.removeTaint("node-x", FENCING_TAINT);
    await expect(f.adapter.addTaint("node-x", FENCING_TAINT)).rejects.toSatisfy((e) => isFencelineError(e, ErrorCode.NotFound));
  });

  it("updates the value of a taint with the same key and effect", async () => {
    await f.adapter.addTaint("node-b", { ...OUT_OF_SERVICE_TAINT, value: "hardwarefailure" });
    await f.adapter.addTaint("node-b", OUT_OF_SERVICE_TAINT);
    expect(f.cluster.node("node-b")!.taints).toEqual([OUT_OF_SERVICE_TAINT]);
  });

  it("force-deletes every pod of a node (grace 0) but leaves its VolumeAttachments to the attach-detach controller; again deletes nothing", async () => {
    const node = nodeOf("db-0");
    const before = await f.adapter.countWorkloads(node);
    expect(before.pods).toBeGreaterThan(0);
    expect(before.volumeAttachments).toBe(1);
    f.cluster.crash(node);
    await f.adapter.addTaint(node, FENCING_TAINT);
    const deleted = await f.adapter.deletePods(node);
    expect(deleted).toBe(before.pods);
    expect(f.cluster.events().filter((e) => e.kind === "pod.force-deleted")).toHaveLength(before.pods);
    expect(await f.adapter.deletePods(node)).toBe(0);
    expect(await f.adapter.countWorkloads(node)).toEqual({ pods: 0, volumeAttachments: 1 });
    // The StatefulSet controller re-creates db-0 elsewhere; its volume waits for the detach.
    f.tick();
    expect(nodeOf("db-0")).not.toBe(node);
    expect(f.server.requests.some((r) => r.method === "DELETE" && r.path.includes("volumeattachments"))).toBe(false);
    expect(checkInvariants(f.cluster, f.clock.now()).ok).toBe(true);
  });

  it("reads the server version as major.minor", async () => {
    expect(await f.adapter.serverVersion()).toBe("1.30");
  });

  it("retries a 409 conflict and a 500 and succeeds", async () => {
    f.server.injectFault({ status: 409, method: "PATCH", times: 2 });
    await f.adapter.addTaint("node-a", FENCING_TAINT);
    expect(f.cluster.node("node-a")!.taints).toEqual([FENCING_TAINT]);
    expect(f.server.requests.filter((r) => r.method === "PATCH").map((r) => r.status)).toEqual([409, 409, 200]);

    f.server.injectFault({ status: 500, path: "/pods", times: 2 });
    f.server.injectFault({ status: 503, path: "/volumeattachments", times: 1 });
    f.server.injectFault({ status: 500, path: "/version", times: 1 });
    const node = nodeOf("db-1");
    f.cluster.crash(node);
    await f.adapter.addTaint(node, FENCING_TAINT);
    expect(await f.adapter.deletePods(node)).toBeGreaterThan(0);
    expect((await f.adapter.countWorkloads(node)).volumeAttachments).toBe(1);
    expect(await f.adapter.serverVersion()).toBe("1.30");
    expect(f.server.requests.filter((r) => r.status >= 500).length).toBe(4);
  });

  it("re-reads the node after a real conflict: a taint added meanwhile by someone else is kept", async () => {
    // Someone else's change lands between our read and our patch: the patch carries the
    // resourceVersion we read, gets a real 409, and the retry reads again.
    let raced = false;
    f.server.onRequest = async (method) => {
      if (method === "PATCH" && !raced) {
        raced = true;
        await f.cluster.addTaint("node-c", { key: "other.io/maintenance", effect: "NoSchedule" });
      }
    };
    await f.adapter.addTaint("node-c", FENCING_TAINT);
    expect(raced).toBe(true);
    expect(f.server.requests.filter((r) => r.method === "PATCH").map((r) => r.status)).toEqual([409, 200]);
    expect(f.cluster.node("node-c")!.taints.map((t) => t.key)).toEqual(["other.io/maintenance", FENCING_TAINT.key]);
  });

  it("reports a 403 clearly, naming the verb, the resource and the RBAC rule, without retrying", async () => {
    f.server.injectFault({ status: 403, method: "PATCH", times: 10 });
    const err = await f.adapter.addTaint("node-a", FENCING_TAINT).catch((e: unknown) => e);
    expect(isFencelineError(err, ErrorCode.Forbidden)).toBe(true);
    expect((err as Error).message).toContain("403 Forbidden");
    expect((err as Error).message).toContain("patch nodes/node-a");
    expect((err as Error).message).toContain('{ apiGroups: [""], resources: ["nodes"], verbs: ["patch"] }');
    expect(f.server.requests.filter((r) => r.status === 403)).toHaveLength(1);

    f.server.clearFaults();
    f.server.injectFault({ status: 403, path: "/volumeattachments", times: 10 });
    const err2 = await f.adapter.countWorkloads("node-a").catch((e: unknown) => e);
    expect((err2 as Error).message).toContain("list storage.k8s.io/volumeattachments");
    expect((err2 as Error).message).toContain('{ apiGroups: ["storage.k8s.io"], resources: ["volumeattachments"], verbs: ["list"] }');
  });

  it("gives up after the retry budget with the last status in the message", async () => {
    f.server.injectFault({ status: 500, path: "/version", times: 100 });
    const err = await f.adapter.serverVersion().catch((e: unknown) => e);
    expect(isFencelineError(err)).toBe(true);
    expect((err as Error).message).toMatch(/after 6 attempts \(HTTP 500\)/);
  });

  it("answers 401 to a client without the token, reported as Forbidden with a hint", async () => {
    const { createKubernetesCluster, KubeConfig } = await import("@fenceline/kubernetes");
    const kc = new KubeConfig();
    kc.loadFromString(f.server.kubeconfig().replace(/token: .*/, "token: wrong"));
    const err = await createKubernetesCluster({ kubeConfig: kc })
      .serverVersion()
      .catch((e: unknown) => e);
    expect(isFencelineError(err, ErrorCode.Forbidden)).toBe(true);
    expect((err as Error).message).toContain("401 Unauthorized");
  });

  it("never deletes a pod re-created under the same name on another node (uid precondition)", async () => {
    const node = nodeOf("db-0");
    f.cluster.crash(node);
    await f.adapter.addTaint(node, FENCING_TAINT);
    // Between the adapter's list and its delete, db-0 is removed and re-created elsewhere.
    let replaced: string | undefined;
    f.server.onRequest = (method, path) => {
      if (method === "DELETE" && path.endsWith("/pods/db-0") && replaced === undefined) {
        f.cluster.forceDeletePod("db-0");
        f.tick();
        replaced = f.cluster.pod("db-0")!.uid;
      }
    };
    await f.adapter.deletePods(node);
    expect(replaced).toBeDefined();
    expect(f.cluster.pod("db-0")!.uid).toBe(replaced);
    expect(f.cluster.pod("db-0")!.node).not.toBe(node);
    expect(f.server.requests.some((r) => r.method === "DELETE" && r.path.endsWith("/db-0") && r.status === 409)).toBe(true);
  });
});
