import type { InMemoryCluster } from "./cluster.js";

/** What the checker reads: the machines' truth, not the API's opinion. */
export type ClusterTruth = Pick<InMemoryCluster, "containers" | "volumeAttachments" | "replicas">;

export type InvariantName = "replica-runs-twice" | "volume-on-two-nodes";

export interface Violation {
  readonly invariant: InvariantName;
  readonly detail: string;
  readonly at: number;
}

/** How long a StatefulSet replica has been without a running copy (0 while one runs). */
export interface ReplicaDowntime {
  readonly replica: string;
  readonly workload: string;
  readonly downSince?: number;
  readonly downForMs: number;
}

export interface InvariantReport {
  readonly ok: boolean;
  readonly violations: readonly Violation[];
  /** Recorded, not a violation: availability, per StatefulSet replica. */
  readonly downtime: readonly ReplicaDowntime[];
}

/**
 * The at-most-one promise, checked on what actually runs: a StatefulSet replica identity must
 * not run twice, and a ReadWriteOnce volume must not be attached to, or used by running
 * containers on, two nodes at once. Call it after every step; a violation repeats on every
 * check while it lasts.
 */
export function checkInvariants(cluster: ClusterTruth, now: number): InvariantReport {
  const violations: Violation[] = [];
  const downtime: ReplicaDowntime[] = [];

  for (const replica of cluster.replicas()) {
    if (replica.runningOn.length > 1) {
      violations.push({
        invariant: "replica-runs-twice",
        detail: `${replica.replica} runs ${replica.runningOn.length} times, on ${replica.runningOn.join(", ")}`,
        at: now,
      });
    }
    const downForMs = replica.downSince === undefined ? 0 : now - replica.downSince;
    downtime.push({
      replica: replica.replica,
      workload: replica.workload,
      ...(replica.downSince === undefined ? {} : { downSince: replica.downSince }),
      downForMs,
    });
  }

  const usage = new Map<string, Map<string, Set<"attached" | "in use">>>();
  const note = (volume: string, node: string, how: "attached" | "in use"): void => {
    let byNode = usage.get(volume);
    if (byNode === undefined) usage.set(volume, (byNode = new Map()));
    let hows = byNode.get(node);
    if (hows === undefined) byNode.set(node, (hows = new Set()));
    hows.add(how);
  };
  for (const va of cluster.volumeAttachments()) note(va.volume, va.node, "attached");
  for (const c of cluster.containers()) if (c.volume !== undefined) note(c.volume, c.node, "in use");
  for (const [volume, byNode] of usage) {
    if (byNode.size < 2) continue;
    const where = [...byNode].map(([node, hows]) => `${node} (${[...hows].join(", ")})`).join(", ");
    violations.push({ invariant: "volume-on-two-nodes", detail: `ReadWriteOnce volume ${volume} on ${where}`, at: now });
  }

  return { ok: violations.length === 0, violations, downtime };
}

export interface NodeRecovery {
  readonly node: string;
  readonly failedAt: number;
  /** The StatefulSet replicas that were on the node when it failed. */
  readonly replicas: readonly string[];
  /** First step at which every one of them ran on another node. */
  readonly recoveredAt?: number;
}

type TrackedCluster = Pick<InMemoryCluster, "pods" | "containers" | "replicas" | "onStep">;

/**
 * Measures recovery for the demo: after `markFailed(node, at)`, it watches every step and
 * records when all the StatefulSet replicas that lived on that node run again elsewhere.
 * A node without stateful replicas counts as recovered when it failed.
 */
export class RunningTracker {
  readonly #cluster: TrackedCluster;
  readonly #records = new Map<string, { node: string; failedAt: number; replicas: string[]; recoveredAt?: number }>();
  readonly #unsubscribe: () => void;

  constructor(cluster: TrackedCluster) {
    this.#cluster = cluster;
    this.#unsubscribe = cluster.onStep((now) => this.observe(now));
  }

  /** Remembers which replicas the node hosts (pod objects bound to it or containers on it). */
  markFailed(node: string, at: number): void {
    const replicas = new Set<string>();
    for (const pod of this.#cluster.pods()) if (pod.node === node && pod.ordinal !== undefined) replicas.add(pod.name);
    for (const c of this.#cluster.containers()) if (c.node === node && c.ordinal !== undefined) replicas.add(c.pod);
    const record = { node, failedAt: at, replicas: [...replicas].sort() };
    this.#records.set(node, replicas.size === 0 ? { ...record, recoveredAt: at } : record);
  }

  /** Called on every step (it subscribes itself); callable by hand too. */
  observe(now: number): void {
    let runningOn: Map<string, readonly string[]> | undefined;
    for (const record of this.#records.values()) {
      if (record.recoveredAt !== undefined) continue;
      runningOn ??= new Map(this.#cluster.replicas().map((r) => [r.replica, r.runningOn]));
      const elsewhere = (replica: string): boolean => (runningOn?.get(replica) ?? []).some((n) => n !== record.node);
      if (record.replicas.every(elsewhere)) record.recoveredAt = now;
    }
  }

  recoveredAt(node: string): number | undefined {
    return this.#records.get(node)?.recoveredAt;
  }

  recovery(node: string): NodeRecovery | undefined {
    const record = this.#records.get(node);
    return record === undefined ? undefined : { ...record, replicas: [...record.replicas] };
  }

  /** Stops listening to the cluster's steps. */
  dispose(): void {
    this.#unsubscribe();
  }
}
