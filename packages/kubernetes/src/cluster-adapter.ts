import {
  CoreV1Api,
  PatchStrategy,
  StorageV1Api,
  VersionApi,
  setHeaderOptions,
  type KubeConfig,
  type V1Node,
  type V1Pod,
  type V1Taint,
} from "@kubernetes/client-node";
import { OUT_OF_SERVICE_TAINT } from "@fenceline/contracts";
import type { Logger } from "pino";
import type { ClusterApi, Taint } from "@fenceline/contracts";
import { statusOf, step, type Call } from "./errors.js";
import { createRetrier, type RetryOptions } from "./retry.js";

export type KubernetesClusterOptions = {
  kubeConfig: KubeConfig;
  log?: Logger;
  retry?: RetryOptions;
  /** Page size for list calls (default 500). */
  pageSize?: number;
};

const NODES = (verb: Call["verb"], name?: string): Call => ({ verb, resource: "nodes", group: "", ...(name ? { name } : {}) });
const PODS = (verb: Call["verb"], name?: string, namespace?: string): Call => ({
  verb,
  resource: "pods",
  group: "",
  ...(name ? { name } : {}),
  ...(namespace ? { namespace } : {}),
});
const VAS = (verb: Call["verb"], name?: string): Call => ({
  verb,
  resource: "volumeattachments",
  group: "storage.k8s.io",
  ...(name ? { name } : {}),
});
const PVCS = (verb: Call["verb"], name: string, namespace: string): Call => ({
  verb,
  resource: "persistentvolumeclaims",
  group: "",
  name,
  namespace,
});
const VERSION: Call = { verb: "get", resource: "version (non-resource URL /version)", group: "" };

/** Kubernetes identifies a taint on a node by key and effect. */
const sameTaint = (a: { key: string; effect: string }, b: { key: string; effect: string }) => a.key === b.key && a.effect === b.effect;

/** A taint as plain JSON for a patch body (the client's objects carry Dates). */
function plainTaint(t: V1Taint): Record<string, string> {
  const out: Record<string, string> = { key: t.key, effect: t.effect };
  if (t.value !== undefined && t.value !== null && t.value !== "") out.value = t.value;
  if (t.timeAdded) out.timeAdded = new Date(t.timeAdded).toISOString().replace(/\.\d{3}Z$/, "Z");
  return out;
}

const formatTaint = (t: Taint) => `${t.key}${t.value ? `=${t.value}` : ""}:${t.effect}`;

/** A static pod's mirror: deleting it through the API stops nothing (the kubelet owns it). */
export const isMirrorPod = (pod: V1Pod) => pod.metadata?.annotations?.["kubernetes.io/config.mirror"] !== undefined;
/** Its controller puts it straight back on the same node. */
export const isDaemonSetPod = (pod: V1Pod) => pod.metadata?.ownerReferences?.some((o) => o.kind === "DaemonSet" && o.controller) === true;
const isFinished = (pod: V1Pod) => pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed";

/**
 * Whether the pod stays through the out-of-service taint for good: a toleration without
 * tolerationSeconds that matches it (the taint eviction controller never evicts it).
 */
export function toleratesOutOfService(pod: V1Pod): boolean {
  return (pod.spec?.tolerations ?? []).some((t) => {
    if (t.tolerationSeconds !== undefined && t.tolerationSeconds !== null) return false;
    if (t.effect && t.effect !== OUT_OF_SERVICE_TAINT.effect) return false;
    if (t.operator === "Exists") return !t.key || t.key === OUT_OF_SERVICE_TAINT.key;
    return t.key === OUT_OF_SERVICE_TAINT.key && (t.value ?? "") === (OUT_OF_SERVICE_TAINT.value ?? "");
  });
}

/**
 * Whether a pod has to leave a fenced node before its workloads count as moved: not a
 * DaemonSet or mirror pod (they belong to the node), not tolerating the out-of-service taint,
 * not finished already.
 */
export const mustMove = (pod: V1Pod) => !isMirrorPod(pod) && !isDaemonSetPod(pod) && !toleratesOutOfService(pod) && !isFinished(pod);

/** The ClusterApi on a real Kubernetes API server through @kubernetes/client-node. */
export type KubernetesCluster = ClusterApi & {
  /** Reads a node (null when it does not exist). */
  readNode(name: string): Promise<V1Node | null>;
};

/**
 * The cluster actuator's adapter on a Kubernetes API server. Every call is idempotent: a taint
 * that is already there, or already gone, and an object deleted by someone else (404) are all
 * success. Conflicts (409), throttling (429) and transient server errors (500/502/503/504) and
 * network errors are retried with backoff; a 403 becomes a FencelineError(Forbidden) that
 * names the RBAC rule the service account lacks.
 *
 * RBAC it needs: nodes get/patch; pods list/delete (all namespaces); volumeattachments
 * (storage.k8s.io) list; persistentvolumeclaims get (the volumes of pods that stay on the
 * node); the /version URL (public to authenticated users by default).
 */
export function createKubernetesCluster(options: KubernetesClusterOptions): KubernetesCluster {
  const { kubeConfig, log } = options;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const storage = kubeConfig.makeApiClient(StorageV1Api);
  const version = kubeConfig.makeApiClient(VersionApi);
  const retry = createRetrier({ ...options.retry, ...(log ? { log } : {}) });
  const pageSize = options.pageSize ?? 500;
  const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

  const readNode = async (name: string): Promise<V1Node | null> => {
    try {
      return await step(NODES("get", name), () => core.readNode({ name }));
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw err;
    }
  };

  /**
   * Read, change the taint list, merge-patch it with the resourceVersion we read: a concurrent
   * change to the node (another controller's taint) is a 409, and the retry reads again.
   */
  const changeTaints = async (name: string, change: (taints: V1Taint[]) => V1Taint[] | null, missingIsOk: boolean): Promise<boolean> =>
    retry(NODES("patch", name), async () => {
      const node = await readNode(name);
      if (node === null) {
        if (missingIsOk) return false;
        throw Object.assign(new Error(`node ${name} not found`), { code: 404 });
      }
      const current = node.spec?.taints ?? [];
      const next = change(current);
      if (next === null) return false;
      const body = { metadata: { resourceVersion: node.metadata?.resourceVersion }, spec: { taints: next.map(plainTaint) } };
      await step(NODES("patch", name), () => core.patchNode({ name, body }, mergePatch));
      return true;
    });

  const listPodsOn = async (node: string): Promise<V1Pod[]> => {
    const pods: V1Pod[] = [];
    let cont: string | undefined;
    do {
      const page = await retry(PODS("list"), () =>
        core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}`, limit: pageSize, ...(cont ? { _continue: cont } : {}) }),
      );
      pods.push(...page.items.filter((p) => p.spec?.nodeName === node));
      cont = page.metadata?._continue || undefined;
    } while (cont);
    return pods;
  };

  const listAttachmentsOn = async (node: string) => {
    const out: Array<{ name: string; volume?: string }> = [];
    let cont: string | undefined;
    do {
      // VolumeAttachments have no field selector on spec.nodeName: filter here.
      const page = await retry(VAS("list"), () => storage.listVolumeAttachment({ limit: pageSize, ...(cont ? { _continue: cont } : {}) }));
      for (const va of page.items) {
        if (va.spec?.nodeName !== node || !va.metadata?.name) continue;
        const volume = va.spec.source?.persistentVolumeName;
        out.push({ name: va.metadata.name, ...(volume ? { volume } : {}) });
      }
      cont = page.metadata?._continue || undefined;
    } while (cont);
    return out;
  };

  /** The PersistentVolumes the claims of these pods are bound to (read only when a staying pod has claims). */
  const volumesOf = async (pods: V1Pod[]): Promise<Set<string>> => {
    const volumes = new Set<string>();
    for (const pod of pods) {
      const namespace = pod.metadata?.namespace ?? "default";
      for (const v of pod.spec?.volumes ?? []) {
        const name = v.persistentVolumeClaim?.claimName;
        if (!name) continue;
        const claim = await retry(PVCS("get", name, namespace), async () => {
          try {
            return await step(PVCS("get", name, namespace), () => core.readNamespacedPersistentVolumeClaim({ name, namespace }));
          } catch (err) {
            if (statusOf(err) === 404) return null;
            throw err;
          }
        });
        if (claim?.spec?.volumeName) volumes.add(claim.spec.volumeName);
      }
    }
    return volumes;
  };

  /** Force-deletes one pod (grace 0, uid precondition); false when it was gone already. */
  const forceDelete = (pod: V1Pod): Promise<boolean> => {
    const name = pod.metadata!.name!;
    const namespace = pod.metadata?.namespace ?? "default";
    const uid = pod.metadata?.uid;
    // The uid precondition makes sure a retry never deletes a pod the controller re-created
    // under the same name (a StatefulSet pod) on another node.
    return retry(PODS("delete", name, namespace), async () => {
      try {
        await step(PODS("delete", name, namespace), () =>
          core.deleteNamespacedPod({
            name,
            namespace,
            gracePeriodSeconds: 0,
            body: { gracePeriodSeconds: 0, propagationPolicy: "Background", ...(uid ? { preconditions: { uid } } : {}) },
          }),
        );
        return true;
      } catch (err) {
        const status = statusOf(err);
        if (status === 404) return false;
        // A delete has no other conflict than a failed precondition: the pod we listed is gone,
        // and the one by its name now is another (a StatefulSet's replacement).
        if (status === 409 && uid) return false;
        throw err;
      }
    });
  };

  const forceDeleteAll = async (pods: V1Pod[]) => {
    let deleted = 0;
    for (const pod of pods) if (pod.metadata?.name && (await forceDelete(pod))) deleted++;
    return deleted;
  };

  return {
    readNode: (name) => retry(NODES("get", name), () => readNode(name)),

    async addTaint(name, taint) {
      const changed = await changeTaints(
        name,
        (taints) => {
          const existing = taints.find((t) => sameTaint(t, taint));
          if (existing && (existing.value ?? "") === (taint.value ?? "")) return null;
          const added: V1Taint = { key: taint.key, effect: taint.effect, ...(taint.value ? { value: taint.value } : {}) };
          if (taint.effect === "NoExecute") added.timeAdded = new Date();
          return [...taints.filter((t) => !sameTaint(t, taint)), added];
        },
        false,
      );
      log?.info(
        { node: name, taint: formatTaint(taint), changed },
        changed ? `taint ${formatTaint(taint)} added to ${name}` : `taint ${formatTaint(taint)} already on ${name}`,
      );
    },

    async removeTaint(name, taint) {
      const changed = await changeTaints(
        name,
        (taints) => (taints.some((t) => sameTaint(t, taint)) ? taints.filter((t) => !sameTaint(t, taint)) : null),
        true,
      );
      log?.info(
        { node: name, taint: formatTaint(taint), changed },
        changed ? `taint ${formatTaint(taint)} removed from ${name}` : `taint ${formatTaint(taint)} not on ${name}`,
      );
    },

    async deletePods(node) {
      // DaemonSet pods would be put straight back on the node, mirror pods belong to its kubelet.
      const pods = (await listPodsOn(node)).filter((p) => !isMirrorPod(p) && !isDaemonSetPod(p));
      const deleted = await forceDeleteAll(pods);
      log?.info({ node, deleted }, `${deleted} pods force-deleted from ${node}`);
      return deleted;
    },

    async deleteEvictedPods(node) {
      const evicted = (await listPodsOn(node)).filter((p) => mustMove(p) && p.metadata?.deletionTimestamp);
      if (evicted.length === 0) return 0;
      const deleted = await forceDeleteAll(evicted);
      log?.info({ node, deleted }, `${deleted} evicted pods force-deleted from ${node} (out-of-service)`);
      return deleted;
    },

    async countWorkloads(node) {
      const [pods, attachments] = await Promise.all([listPodsOn(node), listAttachmentsOn(node)]);
      const moving = pods.filter(mustMove);
      const staying = pods.filter((p) => !mustMove(p) && !isFinished(p));
      // The volumes the staying pods use stay attached; only the others must be detached.
      const kept = staying.some((p) => p.spec?.volumes?.some((v) => v.persistentVolumeClaim))
        ? await volumesOf(staying)
        : new Set<string>();
      return { pods: moving.length, volumeAttachments: attachments.filter((a) => !a.volume || !kept.has(a.volume)).length };
    },

    async serverVersion() {
      const info = await retry(VERSION, () => version.getCode());
      return parseServerVersion(info);
    },
  };
}

/** "1.30" from a VersionInfo; tolerates "27+" minors (GKE, EKS) and falls back to gitVersion. */
export function parseServerVersion(info: { major?: string; minor?: string; gitVersion?: string }): string {
  const major = (info.major ?? "").replace(/\D.*$/, "");
  const minor = (info.minor ?? "").replace(/\D.*$/, "");
  if (major && minor) return `${Number(major)}.${Number(minor)}`;
  const m = /^v?(\d+)\.(\d+)/.exec(info.gitVersion ?? "");
  if (m) return `${Number(m[1])}.${Number(m[2])}`;
  throw new Error(`unrecognised Kubernetes version ${JSON.stringify(info)}`);
}
