import type { Taint } from "@fenceline/contracts";

/** Read-only views of the simulated cluster, for the invariant checker, the demo and tests. */

export type PowerState = "on" | "off";
export type PodPhase = "Pending" | "Running" | "Terminating";
export type WorkloadKind = "StatefulSet" | "Deployment" | "DaemonSet";

export interface NodeView {
  readonly name: string;
  readonly taints: readonly Taint[];
  readonly power: PowerState;
  /** True from `crash()` until `boot()`: powered on, but nothing runs (hard crash or hang). */
  readonly crashed: boolean;
  readonly kubeletRunning: boolean;
  /** False while the node is cut off from the network; its containers keep running. */
  readonly reachable: boolean;
  readonly bootId: string;
}

/** A pod as the API server sees it. */
export interface PodView {
  readonly name: string;
  /** Distinguishes a re-created pod from the one it replaced (same name, new object). */
  readonly uid: string;
  readonly node: string;
  readonly workload: string;
  readonly ordinal?: number;
  readonly volume?: string;
  readonly phase: PodPhase;
  readonly createdAt: number;
  readonly deletionRequestedAt?: number;
}

/** A pod's processes as they actually run on a machine, whatever the API says. */
export interface ContainerView {
  readonly pod: string;
  readonly uid: string;
  readonly node: string;
  readonly workload: string;
  readonly ordinal?: number;
  readonly volume?: string;
  readonly startedAt: number;
}

export interface VolumeAttachmentView {
  readonly volume: string;
  readonly node: string;
  readonly attachedAt: number;
}

export interface WorkloadView {
  readonly name: string;
  readonly kind: WorkloadKind;
  readonly replicas: number;
}

/** One StatefulSet replica identity (`name-<ordinal>`) and where it actually runs. */
export interface ReplicaStatus {
  readonly replica: string;
  readonly workload: string;
  readonly volume: string;
  readonly runningOn: readonly string[];
  /** Since when no copy of it runs anywhere; undefined while one does. */
  readonly downSince?: number;
}

export type ClusterEventKind =
  | "node.added"
  | "node.crashed"
  | "node.powered-off"
  | "node.deleted"
  | "node.booted"
  | "node.reachable"
  | "node.unreachable"
  | "kubelet.stopped"
  | "kubelet.started"
  | "taint.added"
  | "taint.removed"
  | "workload.added"
  | "pod.created"
  | "pod.deletion-requested"
  | "pod.deleted"
  | "pod.force-deleted"
  | "container.started"
  | "container.stopped"
  | "volume.attached"
  | "volume.attach-refused"
  | "volume.detached"
  | "volume.force-detached"
  | "api.unavailable"
  | "api.available";

export interface ClusterEvent {
  readonly at: number;
  readonly kind: ClusterEventKind;
  readonly node?: string;
  readonly what: string;
}
