import { createHash } from "node:crypto";
import type { NodeView, PodView, VolumeAttachmentView, WorkloadKind } from "../cluster-views.js";

/** JSON as the API server speaks it. */
export type Json = Record<string, unknown>;

export type ConditionStatus = "True" | "False" | "Unknown";

/** What the API server adds to the model's nodes: metadata and the node controller's view. */
export type NodeOverlay = {
  uid: string;
  createdAt: number;
  labels: Record<string, string>;
  unschedulable: boolean;
  ready: ConditionStatus;
  readyReason: string;
  readyMessage: string;
  readySince: number;
  lastHeartbeat: number;
};

/** RFC 3339 with milliseconds (Go's time.Parse(RFC3339) accepts the fraction). */
const iso = (ms: number) => new Date(ms).toISOString();

export const NAMESPACE = "default";

export function vaName(volume: string, node: string): string {
  return `csi-${createHash("sha256").update(`${volume}\u0000${node}`).digest("hex")}`;
}

export function nodeSignature(view: NodeView, overlay: NodeOverlay): string {
  return JSON.stringify([
    view.taints,
    overlay.labels,
    overlay.unschedulable,
    overlay.ready,
    overlay.readySince,
    overlay.readyReason,
    view.bootId,
  ]);
}

export function renderNode(view: NodeView, overlay: NodeOverlay, rv: number, kubeletVersion: string): Json {
  const spec: Json = {};
  if (view.taints.length > 0) spec.taints = view.taints.map((t) => ({ ...t }));
  if (overlay.unschedulable) spec.unschedulable = true;
  return {
    kind: "Node",
    apiVersion: "v1",
    metadata: {
      name: view.name,
      uid: overlay.uid,
      resourceVersion: String(rv),
      creationTimestamp: iso(overlay.createdAt),
      labels: { ...overlay.labels },
    },
    spec,
    status: {
      conditions: [
        {
          type: "Ready",
          status: overlay.ready,
          reason: overlay.readyReason,
          message: overlay.readyMessage,
          lastHeartbeatTime: iso(overlay.lastHeartbeat),
          lastTransitionTime: iso(overlay.readySince),
        },
      ],
      addresses: [{ type: "Hostname", address: view.name }],
      nodeInfo: {
        bootID: view.bootId,
        machineID: `sim-${view.name}`,
        systemUUID: `sim-${view.name}`,
        kernelVersion: "6.1.0-sim",
        osImage: "Fenceline simulated node",
        containerRuntimeVersion: "sim://1.0.0",
        kubeletVersion,
        kubeProxyVersion: kubeletVersion,
        operatingSystem: "linux",
        architecture: "amd64",
      },
    },
  };
}

export function podSignature(pod: PodView): string {
  return `${pod.uid}|${pod.node}|${pod.phase}|${pod.deletionRequestedAt ?? ""}`;
}

export function renderPod(pod: PodView, kind: WorkloadKind | undefined, rv: number): Json {
  const metadata: Json = {
    name: pod.name,
    namespace: NAMESPACE,
    uid: pod.uid,
    resourceVersion: String(rv),
    creationTimestamp: iso(pod.createdAt),
    labels: { app: pod.workload },
    ownerReferences: [
      kind === "StatefulSet"
        ? {
            apiVersion: "apps/v1",
            kind: "StatefulSet",
            name: pod.workload,
            uid: `sts-${pod.workload}`,
            controller: true,
            blockOwnerDeletion: true,
          }
        : kind === "DaemonSet"
          ? {
              apiVersion: "apps/v1",
              kind: "DaemonSet",
              name: pod.workload,
              uid: `ds-${pod.workload}`,
              controller: true,
              blockOwnerDeletion: true,
            }
          : {
              apiVersion: "apps/v1",
              kind: "ReplicaSet",
              name: `${pod.workload}-sim`,
              uid: `rs-${pod.workload}`,
              controller: true,
              blockOwnerDeletion: true,
            },
    ],
  };
  if (pod.deletionRequestedAt !== undefined) {
    metadata.deletionTimestamp = iso(pod.deletionRequestedAt);
    metadata.deletionGracePeriodSeconds = 30;
  }
  const running = pod.phase !== "Pending";
  return {
    kind: "Pod",
    apiVersion: "v1",
    metadata,
    spec: {
      nodeName: pod.node,
      containers: [{ name: "main", image: "registry.k8s.io/pause:3.9" }],
      ...(kind === "DaemonSet" ? { tolerations: [{ operator: "Exists" }] } : {}),
      volumes: pod.volume === undefined ? [] : [{ name: "data", persistentVolumeClaim: { claimName: pod.volume } }],
      ...(pod.ordinal === undefined ? {} : { hostname: pod.name, subdomain: pod.workload }),
    },
    status: {
      phase: running ? "Running" : "Pending",
      conditions: [{ type: "Ready", status: pod.phase === "Running" ? "True" : "False" }],
    },
  };
}

export function vaSignature(va: VolumeAttachmentView): string {
  return `${va.volume}|${va.node}|${va.attachedAt}`;
}

export function renderVolumeAttachment(va: VolumeAttachmentView, rv: number): Json {
  const name = vaName(va.volume, va.node);
  return {
    kind: "VolumeAttachment",
    apiVersion: "storage.k8s.io/v1",
    metadata: { name, uid: `va-${name.slice(4, 20)}`, resourceVersion: String(rv), creationTimestamp: iso(va.attachedAt) },
    spec: { attacher: "csi.sim.fenceline.io", nodeName: va.node, source: { persistentVolumeName: va.volume } },
    status: { attached: true },
  };
}

/** RFC 7386 JSON merge patch (strategic-merge directives such as `$patch` are dropped). */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const out: Json = target !== null && typeof target === "object" && !Array.isArray(target) ? { ...(target as Json) } : {};
  for (const [key, value] of Object.entries(patch as Json)) {
    if (key.startsWith("$")) continue;
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/** A Kubernetes Status object for an error response. */
export function status(code: number, reason: string, message: string, details?: Json): Json {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, ...(details ? { details } : {}), code };
}

export const REASONS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  409: "Conflict",
  410: "Expired",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};
