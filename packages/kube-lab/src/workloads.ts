import { isConflict, isNotFound, type KubeClient, type KubeObject } from "./kube-client.js";
import { CSI_DRIVER, FLEET_LABEL } from "./kubelet-fleet.js";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const IMAGE = "registry.invalid/fenceline/app:1";

async function createIgnoringExists(client: KubeClient, path: string, body: unknown): Promise<void> {
  try {
    await client.create(path, body);
  } catch (err) {
    if (!isConflict(err)) throw err;
  }
}

/** Creates a namespace and waits for its default ServiceAccount (pods are refused until it exists). */
export async function createNamespace(admin: KubeClient, name: string, labels: Record<string, string> = {}): Promise<void> {
  await createIgnoringExists(admin, "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name, labels } });
  const until = Date.now() + 60_000;
  while (!(await admin.find(`/api/v1/namespaces/${name}/serviceaccounts/default`))) {
    if (Date.now() > until)
      throw new Error(`namespace ${name}: no default ServiceAccount after 60 s (is the serviceaccount controller running?)`);
    await sleep(100);
  }
}

/** Pods of a workload land only on the fleet's nodes. */
const onFleet = (fleet: string) => ({ nodeSelector: { [FLEET_LABEL]: fleet } });

export type StatefulSetOptions = {
  namespace: string;
  name: string;
  replicas: number;
  fleet: string;
  /** Each replica gets a ReadWriteOnce CSI volume (a PersistentVolume pre-bound to its claim). Default true. */
  volumes?: boolean;
};

/**
 * A StatefulSet (parallel pod management, one replica per node) whose replicas each claim a ReadWriteOnce volume of
 * the kube-lab CSI driver: `data-NAME-i`, bound to PersistentVolume `NAMESPACE-NAME-i` (volume
 * handle the same), which the attach-detach controller attaches through VolumeAttachments.
 */
export async function createStatefulSet(admin: KubeClient, options: StatefulSetOptions): Promise<void> {
  const { namespace, name, replicas, fleet } = options;
  const volumes = options.volumes ?? true;
  if (volumes) {
    for (let i = 0; i < replicas; i++) {
      const pv = `${namespace}-${name}-${i}`;
      await createIgnoringExists(admin, "/api/v1/persistentvolumes", {
        apiVersion: "v1",
        kind: "PersistentVolume",
        metadata: { name: pv, labels: { [FLEET_LABEL]: fleet } },
        spec: {
          capacity: { storage: "1Gi" },
          accessModes: ["ReadWriteOnce"],
          persistentVolumeReclaimPolicy: "Retain",
          storageClassName: "",
          claimRef: { namespace, name: `data-${name}-${i}` },
          csi: { driver: CSI_DRIVER, volumeHandle: pv },
        },
      });
    }
  }
  await admin.create(`/apis/apps/v1/namespaces/${namespace}/statefulsets`, {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name, namespace },
    spec: {
      replicas,
      serviceName: name,
      podManagementPolicy: "Parallel",
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          ...onFleet(fleet),
          // One replica per node, as a replicated database is run.
          affinity: {
            podAntiAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: [
                { topologyKey: "kubernetes.io/hostname", labelSelector: { matchLabels: { app: name } } },
              ],
            },
          },
          containers: [{ name: "app", image: IMAGE, ...(volumes ? { volumeMounts: [{ name: "data", mountPath: "/data" }] } : {}) }],
        },
      },
      ...(volumes
        ? {
            volumeClaimTemplates: [
              {
                metadata: { name: "data" },
                spec: { accessModes: ["ReadWriteOnce"], storageClassName: "", resources: { requests: { storage: "1Gi" } } },
              },
            ],
          }
        : {}),
    },
  });
}

export async function createDeployment(
  admin: KubeClient,
  options: { namespace: string; name: string; replicas: number; fleet: string },
): Promise<void> {
  const { namespace, name, replicas, fleet } = options;
  await admin.create(`/apis/apps/v1/namespaces/${namespace}/deployments`, {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { ...onFleet(fleet), containers: [{ name: "app", image: IMAGE }] } },
    },
  });
}

/** A DaemonSet that tolerates every taint (as kube-proxy, a CNI or Fenceline's own agent do). */
export async function createDaemonSet(admin: KubeClient, options: { namespace: string; name: string; fleet: string }): Promise<void> {
  const { namespace, name, fleet } = options;
  await admin.create(`/apis/apps/v1/namespaces/${namespace}/daemonsets`, {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name, namespace },
    spec: {
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { ...onFleet(fleet), tolerations: [{ operator: "Exists" }], containers: [{ name: "agent", image: IMAGE }] },
      },
    },
  });
}

/** Pods of a namespace (all of them, or one workload's by its `app` label). */
export async function listPods(admin: KubeClient, namespace: string, app?: string): Promise<KubeObject[]> {
  return (await admin.list(`/api/v1/namespaces/${namespace}/pods`, app ? { labelSelector: `app=${app}` } : undefined)).items;
}

export const isRunningAndReady = (pod: KubeObject) =>
  pod.status?.phase === "Running" &&
  !pod.metadata.deletionTimestamp &&
  ((pod.status?.conditions ?? []) as Array<{ type: string; status: string }>).some((c) => c.type === "Ready" && c.status === "True");

/** Deletes a namespace (the namespace controller removes what is in it) and the fleet's PersistentVolumes. */
export async function deleteNamespace(admin: KubeClient, namespace: string, fleet?: string): Promise<void> {
  await admin.delete(`/api/v1/namespaces/${namespace}`).catch((err: unknown) => {
    if (!isNotFound(err)) throw err;
  });
  if (fleet) {
    const pvs = await admin.list("/api/v1/persistentvolumes", { labelSelector: `${FLEET_LABEL}=${fleet}` });
    await Promise.all(pvs.items.map((pv) => admin.delete(`/api/v1/persistentvolumes/${pv.metadata.name}`)));
  }
}
