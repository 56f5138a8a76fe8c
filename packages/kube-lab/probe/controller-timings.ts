/**
 * What the real controllers do with a crashed node, without Fenceline: crash the node running
 * db-0 (a StatefulSet replica with a ReadWriteOnce CSI volume), act 5 s later the way a
 * remediator would, print every change of the node, its pods and VolumeAttachments, and how
 * long until db-0 runs Ready elsewhere. docs/kubernetes.md ("Decisions") quotes its figures.
 *
 *   node --conditions=source --import tsx packages/kube-lab/probe/controller-timings.ts MODE
 *
 * MODE: oos (the out-of-service taint alone), oos+delete (the taint, then force-delete what it
 * evicted: what Fenceline does), rd (force-delete the node's pods), rd+va (and its
 * VolumeAttachments, what Fenceline did before). Gives up after 150 s.
 */
import {
  startKubeControlPlane,
  KubeletFleet,
  createNamespace,
  createStatefulSet,
  createDeployment,
  createDaemonSet,
  listPods,
  isRunningAndReady,
} from "../src/index.js";
const t0 = Date.now();
const T = () => ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cp = await startKubeControlPlane();
const admin = cp.admin;
const fleet = new KubeletFleet({
  admin,
  nodes: ["x-1", "x-2", "x-3", "x-4"],
  fleet: "x",
  onEvent: (e) => console.log(T(), "machine", e.node, e.what),
});
await fleet.start();
console.log(T(), "fleet started");
await createNamespace(admin, "x");
await createStatefulSet(admin, { namespace: "x", name: "db", replicas: 2, fleet: "x" });
await createDeployment(admin, { namespace: "x", name: "web", replicas: 2, fleet: "x" });
await createDaemonSet(admin, { namespace: "x", name: "ds", fleet: "x" });
for (;;) {
  const pods = await listPods(admin, "x");
  if (pods.length === 8 && pods.every(isRunningAndReady)) break;
  await sleep(200);
}
console.log(T(), "all running", (await listPods(admin, "x")).map((p) => `${p.metadata.name}@${p.spec.nodeName}`).join(" "));
const db0 = (await listPods(admin, "x", "db")).find((p) => p.metadata.name === "db-0")!;
const victim = db0.spec.nodeName;
console.log(
  T(),
  "VAs",
  (await admin.list("/apis/storage.k8s.io/v1/volumeattachments")).items
    .map((v) => `${v.spec.source.persistentVolumeName}@${v.spec.nodeName}:${v.status?.attached}`)
    .join(" "),
);
fleet.crash(victim);
const crashAt = Date.now();
let last = "";
const mode = process.argv[2] ?? "oos";
if (!["oos", "oos+delete", "rd", "rd+va"].includes(mode)) throw new Error(`unknown mode ${mode}`);
let tainted = false;
while (Date.now() - crashAt < 150_000) {
  const node = await admin.get(`/api/v1/nodes/${victim}`);
  const ready = node.status.conditions.find((c) => c.type === "Ready");
  const pods = await listPods(admin, "x");
  const vas = (await admin.list("/apis/storage.k8s.io/v1/volumeattachments")).items;
  const s = `ready=${ready.status} taints=${(node.spec.taints ?? []).map((t) => t.key.replace("node.kubernetes.io/", "") + ":" + t.effect).join(",")} pods=${pods.map((p) => `${p.metadata.name}@${p.spec.nodeName}${p.metadata.deletionTimestamp ? "(T)" : ""}${isRunningAndReady(p) ? "" : "(" + (p.status?.phase ?? "?") + ")"}`).join(" ")} vas=${vas.map((v) => `${v.spec.source.persistentVolumeName.slice(-4)}@${v.spec.nodeName}:${v.status?.attached}${v.metadata.deletionTimestamp ? "(D)" : ""}`).join(" ")}`;
  if (s !== last) {
    console.log(T(), `+${((Date.now() - crashAt) / 1000).toFixed(1)}s`, s);
    last = s;
  }
  if (!tainted && Date.now() - crashAt > 5_000) {
    tainted = true;
    if (mode.startsWith("oos")) {
      await admin.patch(`/api/v1/nodes/${victim}`, {
        spec: {
          taints: [...(node.spec.taints ?? []), { key: "node.kubernetes.io/out-of-service", value: "nodeshutdown", effect: "NoExecute" }],
        },
      });
      console.log(T(), "OOS taint added");
    }
    if (mode === "oos+delete") await sleep(300);
    if (mode !== "oos") {
      for (const p of await listPods(admin, "x"))
        if (p.spec.nodeName === victim && (mode !== "oos+delete" || p.metadata.deletionTimestamp)) {
          await admin.delete(`/api/v1/namespaces/x/pods/${p.metadata.name}`, {
            gracePeriodSeconds: 0,
            preconditions: { uid: p.metadata.uid },
          });
          console.log(T(), "force-deleted", p.metadata.name);
        }
    }
    if (mode === "rd+va")
      for (const v of vas)
        if (v.spec.nodeName === victim) {
          await admin.delete(`/apis/storage.k8s.io/v1/volumeattachments/${v.metadata.name}`);
          console.log(T(), "deleted VA", v.metadata.name);
        }
  }
  const db = pods.find((p) => p.metadata.name === "db-0");
  if (db && db.spec.nodeName !== victim && isRunningAndReady(db)) {
    console.log(T(), `db-0 back after ${((Date.now() - crashAt) / 1000).toFixed(1)} s`);
    break;
  }
  await sleep(250);
}
console.log("truth", JSON.stringify(fleet.containers().map((c) => `${c.pod}@${c.node}`)), JSON.stringify(fleet.volumeAttachments()));
await fleet.stop();
await cp.stop();
