import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FENCING_TAINT, OUT_OF_SERVICE_TAINT } from "@fenceline/contracts";
import { CoreV1Api, StorageV1Api, VersionApi, createNodeWatcher, type NodeWatchEvent } from "@fenceline/kubernetes";
import { parseLabelSelector } from "../../src/index.js";
import { startApiFixture, type ApiFixture } from "./helpers.js";

type WatchLine = { type: string; object: { metadata: { name: string; resourceVersion: string } } };

/** Reads a watch stream line by line until `until` says stop (or the timeout). */
async function readWatch(url: string, token: string, until: (lines: WatchLine[]) => boolean, timeoutMs = 3_000): Promise<WatchLine[]> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
  const lines: WatchLine[] = [];
  let buffer = "";
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let i: number;
      while ((i = buffer.indexOf("\n")) >= 0) {
        lines.push(JSON.parse(buffer.slice(0, i)) as WatchLine);
        buffer = buffer.slice(i + 1);
      }
      if (until(lines)) break;
    }
  } catch (err) {
    if ((err as Error).name !== "AbortError") throw err;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
  return lines;
}

describe("simulated Kubernetes API server", () => {
  let f: ApiFixture;
  beforeEach(async () => {
    f = await startApiFixture({
      server: { controlPlaneNodes: ["node-a"], nodeLabels: (n) => (n === "node-c" ? { pool: "gpu" } : { pool: "general" }) },
    });
  });
  afterEach(async () => {
    await f.stop();
  });

  it("is readable by the standard client with the kubeconfig it wrote: nodes, taints, pods, attachments, version", async () => {
    await f.cluster.addTaint("node-b", FENCING_TAINT);
    await f.cluster.addTaint("node-b", OUT_OF_SERVICE_TAINT);
    const core = f.kubeConfig.makeApiClient(CoreV1Api);
    const nodes = await core.listNode();
    expect(nodes.items.map((n) => n.metadata?.name)).toEqual(["node-a", "node-b", "node-c"]);
    expect(Number(nodes.metadata?.resourceVersion)).toBeGreaterThan(0);
    const b = nodes.items.find((n) => n.metadata?.name === "node-b")!;
    expect(b.spec?.taints?.map((t) => `${t.key}${t.value ? `=${t.value}` : ""}:${t.effect}`)).toEqual([
      "fenceline.io/fencing:NoSchedule",
      "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute",
    ]);
    expect(b.status?.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    expect(b.status?.nodeInfo?.bootID).toBe("node-b-boot-1");
    expect(nodes.items[0]!.metadata?.labels?.["node-role.kubernetes.io/control-plane"]).toBe("");

    const one = await core.readNode({ name: "node-c" });
    expect(one.metadata?.labels).toMatchObject({ "kubernetes.io/hostname": "node-c", pool: "gpu" });

    const pods = await core.listPodForAllNamespaces();
    expect(pods.items.map((p) => p.metadata?.name).sort()).toEqual(["db-0", "db-1", "web-0", "web-1"]);
    const db0 = await core.readNamespacedPod({ name: "db-0", namespace: "default" });
    expect(db0.spec?.volumes?.[0]?.persistentVolumeClaim?.claimName).toBe("data-db-0");
    expect(db0.metadata?.ownerReferences?.[0]?.kind).toBe("StatefulSet");

    const vas = await f.kubeConfig.makeApiClient(StorageV1Api).listVolumeAttachment();
    expect(vas.items.map((v) => `${v.spec.source.persistentVolumeName}@${v.spec.nodeName}`).sort()).toEqual(
      f.cluster
        .volumeAttachments()
        .map((v) => `${v.volume}@${v.node}`)
        .sort(),
    );
    const version = await f.kubeConfig.makeApiClient(VersionApi).getCode();
    expect([version.major, version.minor, version.gitVersion]).toEqual(["1", "30", "v1.30.0"]);
  });

  const kubectl = (() => {
    try {
      execFileSync("kubectl", ["version", "--client"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!kubectl)("is readable by kubectl (when installed): nodes with status and taints, pods with their node", async () => {
    const server = await startApiFixture({ server: { token: null } });
    try {
      await server.cluster.addTaint("node-b", OUT_OF_SERVICE_TAINT);
      server.cluster.crash("node-c");
      server.tick(6_000);
      // Asynchronously: the server runs in this process.
      const run = async (...args: string[]) =>
        (await promisify(execFile)("kubectl", ["--kubeconfig", server.kubeconfig, ...args], { encoding: "utf8" })).stdout;
      const nodes = await run("get", "nodes", "-o", "wide");
      expect(nodes).toMatch(/node-b\s+Ready\s+.*node\.kubernetes\.io\/out-of-service=nodeshutdown:NoExecute/);
      expect(nodes).toMatch(/node-c\s+NotReady/);
      expect(JSON.parse(await run("get", "node", "node-b", "-o", "jsonpath={.spec.taints}"))).toEqual([OUT_OF_SERVICE_TAINT]);
      expect(await run("get", "pods", "-o", "wide")).toMatch(/db-0\s+1\/1\s+Running/);
    } finally {
      await server.stop();
    }
  });

  it("filters lists by field selector (spec.nodeName, metadata.name) and label selector", async () => {
    const core = f.kubeConfig.makeApiClient(CoreV1Api);
    const node = f.cluster.pod("db-0")!.node;
    const onNode = await core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` });
    expect(onNode.items.map((p) => p.metadata?.name).sort()).toEqual(
      f.cluster
        .pods()
        .filter((p) => p.node === node)
        .map((p) => p.name)
        .sort(),
    );
    expect((await core.listNode({ fieldSelector: "metadata.name=node-b" })).items.map((n) => n.metadata?.name)).toEqual(["node-b"]);
    expect((await core.listNode({ labelSelector: "pool=general" })).items.map((n) => n.metadata?.name)).toEqual(["node-a", "node-b"]);
    expect((await core.listNode({ labelSelector: "pool!=general" })).items.map((n) => n.metadata?.name)).toEqual(["node-c"]);
    expect((await core.listNode({ labelSelector: "!node-role.kubernetes.io/control-plane" })).items.map((n) => n.metadata?.name)).toEqual([
      "node-b",
      "node-c",
    ]);
    expect((await core.listNode({ labelSelector: "pool in (gpu, other)" })).items.map((n) => n.metadata?.name)).toEqual(["node-c"]);
    expect((await core.listNamespacedPod({ namespace: "default", labelSelector: "app=db" })).items).toHaveLength(2);
    expect((await core.listNamespacedPod({ namespace: "kube-system" })).items).toHaveLength(0);
    // An unsupported field is a 400, as on a real server.
    await expect(core.listNode({ fieldSelector: "spec.podCIDR=x" })).rejects.toMatchObject({ code: 400 });
  });

  it("merge-patches and strategic-merge-patches node taints and labels, checks resourceVersion, and cordons", async () => {
    const token = f.server.token!;
    const patch = (name: string, body: unknown, type = "application/merge-patch+json") =>
      fetch(`${f.server.url}/api/v1/nodes/${name}`, {
        method: "PATCH",
        headers: { authorization: `Bearer ${token}`, "content-type": type },
        body: JSON.stringify(body),
      });
    let res = await patch("node-a", { spec: { taints: [{ key: "a.io/x", effect: "NoSchedule" }] }, metadata: { labels: { team: "red" } } });
    expect(res.status).toBe(200);
    const node = (await res.json()) as { metadata: { resourceVersion: string; labels: Record<string, string> } };
    expect(node.metadata.labels.team).toBe("red");
    expect(f.cluster.node("node-a")!.taints).toEqual([{ key: "a.io/x", effect: "NoSchedule" }]);

    res = await patch(
      "node-a",
      { metadata: { resourceVersion: "1", labels: { team: null } }, spec: { taints: [] } },
      "application/strategic-merge-patch+json",
    );
    expect(res.status).toBe(409);
    expect(((await res.json()) as { reason: string }).reason).toBe("Conflict");

    res = await patch(
      "node-a",
      { metadata: { resourceVersion: node.metadata.resourceVersion, labels: { team: null } }, spec: { taints: [] } },
      "application/strategic-merge-patch+json",
    );
    expect(res.status).toBe(200);
    expect(f.cluster.node("node-a")!.taints).toEqual([]);
    expect(((await res.json()) as { metadata: { labels: Record<string, string> } }).metadata.labels.team).toBeUndefined();

    expect((await patch("node-a", { spec: { taints: [{ key: "x", effect: "Sometimes" }] } })).status).toBe(422);
    expect((await patch("node-a", [{ op: "add" }], "application/json-patch+json")).status).toBe(415);
    expect((await patch("node-z", { spec: {} })).status).toBe(404);

    // kubectl cordon: spec.unschedulable adds the unschedulable taint, so nothing new lands there.
    expect((await patch("node-c", { spec: { unschedulable: true } })).status).toBe(200);
    expect(f.cluster.node("node-c")!.taints).toEqual([{ key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" }]);
    expect((await patch("node-c", { spec: { unschedulable: null } })).status).toBe(200);
    expect(f.cluster.node("node-c")!.taints).toEqual([]);
  });

  it("deletes a pod gracefully (kubelet finishes) or by force (grace 0), and 404s a missing one", async () => {
    const token = f.server.token!;
    const del = (name: string, query = "") =>
      fetch(`${f.server.url}/api/v1/namespaces/default/pods/${name}${query}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${token}` },
      });
    const res = await del("web-0");
    expect(res.status).toBe(200);
    expect(((await res.json()) as { metadata: { deletionTimestamp?: string } }).metadata.deletionTimestamp).toBeDefined();
    expect(f.cluster.pod("web-0")!.phase).toBe("Terminating");
    f.tick();
    expect(f.cluster.pod("web-0")).toBeUndefined();

    const node = f.cluster.pod("db-0")!.node;
    f.cluster.crash(node);
    expect((await del("db-0", "?gracePeriodSeconds=0")).status).toBe(200);
    expect(f.cluster.pod("db-0")).toBeUndefined();
    expect((await del("db-0", "?gracePeriodSeconds=0")).status).toBe(404);
  });

  it("marks a node whose kubelet stopped Ready=Unknown after the grace period, and True when it is back", async () => {
    const core = f.kubeConfig.makeApiClient(CoreV1Api);
    const ready = async (name: string) => (await core.readNode({ name })).status?.conditions?.find((c) => c.type === "Ready");
    f.cluster.crash("node-b");
    f.tick(1_000);
    expect((await ready("node-b"))?.status).toBe("True");
    f.tick(4_000);
    const unknown = await ready("node-b");
    expect(unknown?.status).toBe("Unknown");
    expect(unknown?.reason).toBe("NodeStatusUnknown");
    expect(unknown?.lastTransitionTime?.getTime()).toBe(f.clock.now());
    f.cluster.boot("node-b");
    f.tick();
    expect((await ready("node-b"))?.status).toBe("True");
    expect((await core.readNode({ name: "node-b" })).status?.nodeInfo?.bootID).toBe("node-b-boot-2");

    f.server.setNodeReady("node-c", "False");
    expect((await ready("node-c"))?.status).toBe("False");
    f.server.setNodeReady("node-c", null);
    expect((await ready("node-c"))?.status).toBe("True");
  });

  it("streams watch events (ADDED, MODIFIED, DELETED) from a resourceVersion, honours selectors and answers 410 for a stale one", async () => {
    const token = f.server.token!;
    const core = f.kubeConfig.makeApiClient(CoreV1Api);
    const rv = (await core.listNode()).metadata!.resourceVersion!;
    const watching = readWatch(
      `${f.server.url}/api/v1/nodes?watch=true&resourceVersion=${rv}&labelSelector=pool%3Dgeneral`,
      token,
      (l) => l.length >= 3,
    );
    await new Promise((r) => setTimeout(r, 50));
    await f.cluster.addTaint("node-b", FENCING_TAINT); // MODIFIED
    f.server.setNodeLabels("node-c", { pool: "general" }); // enters the selection: ADDED
    f.server.setNodeLabels("node-a", { pool: "infra" }); // leaves it: DELETED
    f.cluster.step();
    const lines = await watching;
    expect(lines.map((l) => `${l.type} ${l.object.metadata.name}`)).toEqual(["MODIFIED node-b", "ADDED node-c", "DELETED node-a"]);
    expect(Number(lines[2]!.object.metadata.resourceVersion)).toBeGreaterThan(Number(rv));

    // Without a resourceVersion: the current objects first, as ADDED.
    const initial = await readWatch(`${f.server.url}/api/v1/pods?watch=1`, token, (l) => l.length >= 4);
    expect(initial.map((l) => l.type)).toEqual(["ADDED", "ADDED", "ADDED", "ADDED"]);

    const stale = await readWatch(`${f.server.url}/api/v1/nodes?watch=true&resourceVersion=-5`, token, (l) => l.length >= 1);
    expect(stale[0]!.type).toBe("ERROR");
    expect(stale[0]!.object).toMatchObject({ kind: "Status", status: "Failure", reason: "Expired", code: 410 });
  });

  it("feeds the production node watcher: list, then updates as they happen", async () => {
    const events: NodeWatchEvent[] = [];
    const watcher = createNodeWatcher({ kubeConfig: f.kubeConfig, labelSelector: "pool=general", retryMs: 50 });
    await watcher.start((e) => events.push(e));
    const waitFor = async (pred: () => boolean) => {
      for (let i = 0; i < 100 && !pred(); i++) await new Promise((r) => setTimeout(r, 20));
      expect(pred()).toBe(true);
    };
    await waitFor(() => events.some((e) => e.type === "synced"));
    expect(events.filter((e) => e.type === "upsert").map((e) => (e.type === "upsert" ? e.node.name : ""))).toEqual(["node-a", "node-b"]);
    f.cluster.crash("node-b");
    f.tick(6_000);
    await waitFor(() => events.some((e) => e.type === "upsert" && e.node.name === "node-b" && e.node.conditions[0]?.status === "Unknown"));
    // A node that leaves the selector is a DELETED event for this watch.
    f.server.setNodeLabels("node-a", { pool: "other" });
    await waitFor(() => events.some((e) => e.type === "delete" && e.name === "node-a"));
    await watcher.stop();
  });

  it("lets the node watcher stop at once while its watch is quiet", async () => {
    const watcher = createNodeWatcher({ kubeConfig: f.kubeConfig });
    let synced = false;
    await watcher.start((e) => (synced ||= e.type === "synced"));
    for (let i = 0; i < 100 && !synced; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await watcher.stop();
    expect(Date.now() - t0).toBeLessThan(1_000);
  });

  it("injects faults on the next matching requests and serves 503 while the model's API is down", async () => {
    const core = f.kubeConfig.makeApiClient(CoreV1Api);
    f.server.injectFault({ status: 500, path: "/nodes", times: 1 });
    await expect(core.listNode()).rejects.toMatchObject({ code: 500 });
    await expect(core.listNode()).resolves.toBeDefined();
    f.cluster.setApiAvailable(false);
    await expect(core.listNode()).rejects.toMatchObject({ code: 503 });
    f.cluster.setApiAvailable(true);
    await expect(core.listNode()).resolves.toBeDefined();
  });

  it("keeps an out-of-service node's terminating pods while PodGC is off, and until the node is NotReady", async () => {
    const node = f.cluster.pod("db-0")!.node;
    f.cluster.crash(node);
    f.server.setPodGcEnabled(false);
    await f.adapter.addTaint(node, OUT_OF_SERVICE_TAINT);
    f.tick();
    f.tick();
    expect((await f.adapter.countWorkloads(node)).pods).toBeGreaterThan(0);
    f.server.setPodGcEnabled(true);
    f.tick();
    f.tick();
    // Still Ready for the API: Pod GC waits for the node monitor grace period (50 s).
    expect((await f.adapter.countWorkloads(node)).pods).toBeGreaterThan(0);
    for (let i = 0; i < 80; i++) f.tick();
    expect(await f.adapter.countWorkloads(node)).toEqual({ pods: 0, volumeAttachments: 0 });
  });
});

describe("label selectors", () => {
  it("parses equality, set and existence requirements", () => {
    const m = parseLabelSelector("a=1,b!=2,c,!d,e in (x, y),f notin (z)");
    expect(m({ a: "1", c: "", e: "x" })).toBe(true);
    expect(m({ a: "1", b: "2", c: "", e: "x" })).toBe(false);
    expect(m({ a: "1", c: "", d: "", e: "x" })).toBe(false);
    expect(m({ a: "1", c: "", e: "x", f: "z" })).toBe(false);
    expect(m({ a: "1", e: "x" })).toBe(false);
    expect(parseLabelSelector("")({})).toBe(true);
    expect(() => parseLabelSelector("a b c")).toThrow(/unable to parse/);
  });
});
