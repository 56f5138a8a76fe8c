import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, inject, it } from "vitest";
import { FENCING_TAINT, OUT_OF_SERVICE_TAINT, type AuditRecord } from "@fenceline/contracts";
import { createKubernetesCluster, createNodeEventRecorder, createNodeWatcher, loadAllYaml, loadKubeConfig } from "@fenceline/kubernetes";
import {
  createNamespace,
  createStatefulSet,
  CSI_DRIVER,
  deleteNamespace,
  FLEET_LABEL,
  isRunningAndReady,
  KUBE_LAB_USER_AGENT,
  KubeletFleet,
  listPods,
  type KubeClient,
} from "@fenceline/kube-lab";
import { ENGINE_USER } from "./global-setup.js";
import { kubeAdmin, waitUntil } from "./harness.js";

const DEPLOY = join(fileURLToPath(import.meta.url), "..", "..", "..", "deploy");

type AuditEntry = {
  stage: string;
  verb: string;
  requestURI: string;
  user: { username: string };
  userAgent?: string;
  objectRef?: { resource: string; subresource?: string; apiGroup?: string };
  responseStatus?: { code: number };
  annotations?: Record<string, string>;
};

/** "group/resource:verb" or "/url:verb", as RBAC grants it. */
const permissionOf = (e: AuditEntry) =>
  e.objectRef
    ? `${e.objectRef.apiGroup ?? ""}/${e.objectRef.resource}${e.objectRef.subresource ? `/${e.objectRef.subresource}` : ""}:${e.verb}`
    : `${e.requestURI.split("?")[0]}:${e.verb}`;

function granted(): string[] {
  const role = (
    loadAllYaml(readFileSync(join(DEPLOY, "rbac.yaml"), "utf8")) as Array<{ kind: string; metadata: { name: string }; rules?: unknown }>
  ).find((m) => m.kind === "ClusterRole" && m.metadata.name === "fenceline-engine") as unknown as {
    rules: Array<{ apiGroups?: string[]; resources?: string[]; nonResourceURLs?: string[]; verbs: string[] }>;
  };
  const out = new Set<string>();
  for (const rule of role.rules) {
    for (const verb of rule.verbs) {
      for (const url of rule.nonResourceURLs ?? []) out.add(`${url}:${verb}`);
      for (const group of rule.apiGroups ?? []) for (const resource of rule.resources ?? []) out.add(`${group}/${resource}:${verb}`);
    }
  }
  return [...out].sort();
}

/** A pod that stays through the out-of-service taint and keeps a claim: its volume's attachment stays too. */
async function keeper(admin: KubeClient, namespace: string, fleet: string) {
  await admin.create("/api/v1/persistentvolumes", {
    apiVersion: "v1",
    kind: "PersistentVolume",
    metadata: { name: `${namespace}-keeper`, labels: { [FLEET_LABEL]: fleet } },
    spec: {
      capacity: { storage: "1Gi" },
      accessModes: ["ReadWriteOnce"],
      persistentVolumeReclaimPolicy: "Retain",
      storageClassName: "",
      claimRef: { namespace, name: "keeper-data" },
      csi: { driver: CSI_DRIVER, volumeHandle: `${namespace}-keeper` },
    },
  });
  await admin.create(`/api/v1/namespaces/${namespace}/persistentvolumeclaims`, {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name: "keeper-data", namespace },
    spec: { accessModes: ["ReadWriteOnce"], storageClassName: "", resources: { requests: { storage: "1Gi" } } },
  });
  await admin.create(`/api/v1/namespaces/${namespace}/pods`, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "keeper", namespace, labels: { app: "keeper" } },
    spec: {
      nodeSelector: { [FLEET_LABEL]: fleet },
      tolerations: [{ operator: "Exists", effect: "NoExecute" }],
      containers: [{ name: "app", image: "registry.invalid/fenceline/app:1", volumeMounts: [{ name: "data", mountPath: "/data" }] }],
      volumes: [{ name: "data", persistentVolumeClaim: { claimName: "keeper-data" } }],
    },
  });
}

/**
 * The engine's ClusterRole (deploy/rbac.yaml, applied by the globalSetup) on the real API
 * server, with the real authorizer: Fenceline acting with its ServiceAccount's token makes every
 * call it ever makes, and the API server's audit log (level Metadata for that user only) must
 * show each one allowed, and each permission the role grants used.
 */
describe("deploy/rbac.yaml on the real API server", () => {
  it("allows every call Fenceline makes with the engine's ServiceAccount, and grants nothing it does not use", async () => {
    const admin = kubeAdmin();
    const name = "rbac";
    await createNamespace(admin, name);
    const machines = new KubeletFleet({ admin, nodes: [`${name}-1`, `${name}-2`], fleet: name });
    try {
      await machines.start();
      await createStatefulSet(admin, { namespace: name, name: "db", replicas: 1, fleet: name });
      await keeper(admin, name, name);
      await waitUntil(
        "db-0 and keeper running",
        async () => {
          const pods = await listPods(admin, name);
          return pods.length === 2 && pods.every(isRunningAndReady);
        },
        90_000,
      );
      const podsNode = async (pod: string) => (await admin.get(`/api/v1/namespaces/${name}/pods/${pod}`)).spec.nodeName as string;
      const kubeConfig = loadKubeConfig({ kubeconfig: inject("kubeTest").engineKubeconfig });
      const cluster = createKubernetesCluster({ kubeConfig, retry: { baseMs: 50, maxMs: 200 } });

      // Everything the engine's Kubernetes code does.
      const watcher = createNodeWatcher({ kubeConfig, labelSelector: `${FLEET_LABEL}=${name}` });
      let seen = 0;
      await watcher.start((e) => e.type === "upsert" && seen++);
      await waitUntil("the node watch", () => seen >= 2, 10_000);
      await watcher.stop();
      const keeperNode = await podsNode("keeper");
      expect(await cluster.countWorkloads(keeperNode)).toMatchObject({
        volumeAttachments: (await podsNode("db-0")) === keeperNode ? 1 : 0,
      });
      const victim = await podsNode("db-0");
      await cluster.addTaint(victim, FENCING_TAINT);
      expect(await cluster.serverVersion()).toBe("1.37");
      machines.crash(victim);
      await cluster.addTaint(victim, OUT_OF_SERVICE_TAINT);
      await waitUntil(
        "db-0 evicted and force-deleted",
        async () =>
          (await cluster.deleteEvictedPods(victim)) > 0 || (await listPods(admin, name, "db")).every((p) => p.spec.nodeName !== victim),
        20_000,
      );
      await cluster.deletePods(victim);
      await cluster.removeTaint(victim, OUT_OF_SERVICE_TAINT);
      await cluster.removeTaint(victim, FENCING_TAINT);
      const recorder = createNodeEventRecorder({ kubeConfig, instance: "rbac-test" });
      const record = {
        v: 1,
        id: `audit:${victim}:1`,
        node: victim,
        seq: 1,
        at: Date.now(),
        event: { id: "e", type: "timer.fired", source: "test" },
        from: "suspect",
        to: "fencing",
        changed: true,
        epoch: 1,
        commands: [
          {
            v: 1,
            id: "c",
            node: victim,
            epoch: 1,
            kind: "taint.add",
            issuedAt: 0,
            deadline: 1,
            causedBy: 1,
            params: { taint: FENCING_TAINT },
          },
        ],
        timers: { set: {}, cleared: [] },
        reason: "fencing, epoch 1",
        policyVersion: "t",
      } as AuditRecord;
      expect(await recorder.recordAudit(record)).toBe(1);
      expect(await recorder.recordAudit(record)).toBe(0); // the same record again: the same Event, once

      // What the API server's audit log saw from the engine's ServiceAccount (every test so far,
      // and those running beside this one), except the lab's own client: control-plane.test.ts
      // probes what the engine's role refuses with the engine's token on purpose.
      const { kube } = inject("kubeTest");
      const entries = (): AuditEntry[] =>
        readFileSync(kube.logs.audit, "utf8")
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l) as AuditEntry)
          .filter((e) => e.user.username === ENGINE_USER && e.stage !== "RequestReceived" && e.userAgent !== KUBE_LAB_USER_AGENT);
      await waitUntil(
        "the audit log to show the Event",
        () => entries().some((e) => e.objectRef?.resource === "events" && e.verb === "create"),
        10_000,
      );
      const all = entries();
      const forbidden = all.filter((e) => e.annotations?.["authorization.k8s.io/decision"] === "forbid" || e.responseStatus?.code === 403);
      expect(forbidden.map((e) => `${e.verb} ${e.requestURI}`)).toEqual([]);
      const used = [...new Set(all.map(permissionOf))].sort();
      expect(used).toEqual(granted());
    } finally {
      await machines.stop({ deleteNodes: true });
      await deleteNamespace(admin, name, name);
    }
  }, 180_000);
});
