import { ErrorCode, FencelineError, OUT_OF_SERVICE_TAINT } from "@fenceline/contracts";
import type { Clock, ClusterApi, Taint } from "@fenceline/contracts";
import type {
  ClusterEvent,
  ClusterEventKind,
  ContainerView,
  NodeView,
  PodPhase,
  PodView,
  PowerState,
  ReplicaStatus,
  VolumeAttachmentView,
  WorkloadKind,
  WorkloadView,
} from "./cluster-views.js";

export interface InMemoryClusterOptions {
  clock: Pick<Clock, "now">;
  /** Node names to create, powered on and reachable. */
  nodes?: readonly string[];
  /** What `serverVersion()` answers; default "1.30". */
  serverVersion?: string;
  /**
   * The attach-detach controller force-detaches a volume from an unresponsive node this long
   * after no pod object on that node needs it (Kubernetes' maxWaitForUnmountDuration, 6 min).
   * null disables it.
   */
  forceDetachTimeoutMs?: number | null;
  /**
   * When set, pods of a node unresponsive this long get a deletion request, as the node
   * lifecycle controller plus the default 300 s toleration do (≈ 340 000 ms at Kubernetes
   * defaults). Default null: off, so only explicit faults and remediation act.
   */
  unreachableEvictionMs?: number | null;
  /**
   * The node lifecycle controller marks an unresponsive node NotReady (Ready=Unknown) this long
   * after its kubelet last renewed its Lease (--node-monitor-grace-period, 50 s since 1.32).
   * Until then the scheduler may still bind pods to it and Pod GC leaves its pods alone.
   */
  nodeMonitorGracePeriodMs?: number;
  /** Pod GC runs this often (20 s in kube-controller-manager). */
  podGcPeriodMs?: number;
}

interface SimNode {
  name: string;
  taints: Taint[];
  power: PowerState;
  crashed: boolean;
  kubeletRunning: boolean;
  reachable: boolean;
  bootId: string;
  boots: number;
  unresponsiveSince: number | undefined;
  /** Its Node object was deleted: nothing is scheduled on it any more. */
  deleted: boolean;
}

interface Pod {
  name: string;
  uid: string;
  node: string;
  workload: string;
  ordinal: number | undefined;
  volume: string | undefined;
  phase: PodPhase;
  createdAt: number;
  deletionRequestedAt: number | undefined;
  attachRefused: boolean;
}

interface Container {
  pod: string;
  uid: string;
  node: string;
  workload: string;
  ordinal: number | undefined;
  volume: string | undefined;
  startedAt: number;
}

interface VolumeAttachment {
  volume: string;
  node: string;
  attachedAt: number;
  /** Since when no pod object on the node needs it (for the force-detach timeout). */
  unneededSince: number | undefined;
}

interface Workload {
  name: string;
  kind: WorkloadKind;
  replicas: number;
  createdAt: number;
  nextPodSuffix: number;
}

export const DEFAULT_SERVER_VERSION = "1.30";
const DEFAULT_NODE_MONITOR_GRACE_PERIOD_MS = 50_000;
const DEFAULT_POD_GC_PERIOD_MS = 20_000;
export const DEFAULT_FORCE_DETACH_TIMEOUT_MS = 6 * 60_000;

/**
 * The simulated cluster the actuators act on and the invariant checker reads. The API objects
 * (nodes, pods, VolumeAttachments) and the machines' truth (which containers actually run
 * where) are kept apart on purpose: a pod object can be deleted while its containers still run
 * on a partitioned node, and that gap is what fencing exists to close.
 *
 * Kubelets and controllers act only in `step(now)`, which the simulator calls on every tick,
 * in this order: node lifecycle and taint eviction, PodGC, kubelet sync (stop what was deleted),
 * attach-detach controller, StatefulSet/Deployment controllers, kubelet start (attach, run).
 * Fault hooks and ClusterApi calls change state at once. Everything is deterministic:
 * iteration follows insertion order and placement breaks ties by node name.
 */
export class InMemoryCluster implements ClusterApi {
  readonly #clock: Pick<Clock, "now">;
  readonly #serverVersion: string;
  readonly #forceDetachTimeoutMs: number | null;
  readonly #unreachableEvictionMs: number | null;
  readonly #gracePeriodMs: number;
  readonly #podGcPeriodMs: number;
  #nextPodGc = 0;
  readonly #nodes = new Map<string, SimNode>();
  readonly #workloads = new Map<string, Workload>();
  readonly #pods = new Map<string, Pod>();
  readonly #containers = new Map<string, Container>();
  readonly #attachments = new Map<string, VolumeAttachment>();
  readonly #replicaDownSince = new Map<string, number>();
  readonly #events: ClusterEvent[] = [];
  readonly #stepListeners = new Set<(now: number) => void>();
  #apiAvailable = true;
  #podGcEnabled = true;
  #nextUid = 1;

  constructor(options: InMemoryClusterOptions) {
    this.#clock = options.clock;
    this.#serverVersion = options.serverVersion ?? DEFAULT_SERVER_VERSION;
    this.#forceDetachTimeoutMs =
      options.forceDetachTimeoutMs === undefined ? DEFAULT_FORCE_DETACH_TIMEOUT_MS : options.forceDetachTimeoutMs;
    this.#unreachableEvictionMs = options.unreachableEvictionMs ?? null;
    this.#gracePeriodMs = options.nodeMonitorGracePeriodMs ?? DEFAULT_NODE_MONITOR_GRACE_PERIOD_MS;
    this.#podGcPeriodMs = options.podGcPeriodMs ?? DEFAULT_POD_GC_PERIOD_MS;
    for (const name of options.nodes ?? []) this.addNode(name);
  }

  // ---------------------------------------------------------------- setup

  addNode(name: string, options: { bootId?: string } = {}): void {
    if (this.#nodes.has(name)) throw new FencelineError(ErrorCode.Internal, `node ${name} already exists`);
    const node: SimNode = {
      name,
      taints: [],
      power: "on",
      crashed: false,
      kubeletRunning: true,
      reachable: true,
      bootId: options.bootId ?? `${name}-boot-1`,
      boots: 1,
      unresponsiveSince: undefined,
      deleted: false,
    };
    this.#nodes.set(name, node);
    this.#log("node.added", `node ${name} added (boot ${node.bootId})`, name);
  }

  /** A StatefulSet: replicas `name-0`… each bound to its ReadWriteOnce volume `data-name-<i>`. */
  addStatefulSet(name: string, replicas: number): void {
    this.#addWorkload(name, "StatefulSet", replicas);
    const now = this.#clock.now();
    for (let i = 0; i < replicas; i++) this.#replicaDownSince.set(`${name}-${i}`, now);
  }

  /**
   * A DaemonSet that tolerates every taint, as kube-proxy, a CNI or Fenceline's own agent do:
   * one pod on every node, never evicted, put back on its node when deleted.
   */
  addDaemonSet(name: string): void {
    this.#addWorkload(name, "DaemonSet", 0);
  }

  /** A stateless Deployment: any `replicas` pods, anywhere schedulable. */
  addDeployment(name: string, replicas: number): void {
    this.#addWorkload(name, "Deployment", replicas);
  }

  #addWorkload(name: string, kind: WorkloadKind, replicas: number): void {
    if (this.#workloads.has(name)) throw new FencelineError(ErrorCode.Internal, `workload ${name} already exists`);
    if (!Number.isInteger(replicas) || replicas < 0) throw new RangeError(`replicas must be an integer >= 0, got ${replicas}`);
    this.#workloads.set(name, { name, kind, replicas, createdAt: this.#clock.now(), nextPodSuffix: 0 });
    this.#log("workload.added", `${kind} ${name} with ${replicas} replicas`);
  }

  // ---------------------------------------------------------------- faults

  /** Hard crash or hang: powered on, but the kernel and every container stop. */
  crash(name: string): void {
    const node = this.#node(name);
    node.crashed = true;
    node.kubeletRunning = false;
    this.#log("node.crashed", `node ${name} crashed`, name);
    this.#stopContainersOn(name, "node crashed");
  }

  powerOff(name: string): void {
    const node = this.#node(name);
    node.power = "off";
    node.crashed = false;
    node.kubeletRunning = false;
    this.#log("node.powered-off", `node ${name} powered off`, name);
    this.#stopContainersOn(name, "node powered off");
  }

  /**
   * The node (re)boots: whatever still ran stops, and it comes back powered on with its kubelet
   * running and a new boot id. Its kubelet then (in the next step) forgets pods whose objects
   * were deleted and restarts the ones still bound to it. With `kubelet: false` the kubelet
   * does not start with the boot (a boot gate holds it) until `startKubelet`.
   */
  boot(name: string, newBootId?: string, options: { kubelet?: boolean } = {}): void {
    const node = this.#node(name);
    this.#stopContainersOn(name, "node rebooted");
    node.boots++;
    node.bootId = newBootId ?? `${name}-boot-${node.boots}`;
    node.power = "on";
    node.crashed = false;
    node.kubeletRunning = options.kubelet ?? true;
    this.#log("node.booted", `node ${name} booted (boot ${node.bootId})${node.kubeletRunning ? "" : ", kubelet not started"}`, name);
  }

  /** Network loss or its end. An unreachable node keeps running its containers. */
  setReachable(name: string, reachable: boolean): void {
    const node = this.#node(name);
    if (node.reachable === reachable) return;
    node.reachable = reachable;
    this.#log(reachable ? "node.reachable" : "node.unreachable", `node ${name} ${reachable ? "reachable again" : "unreachable"}`, name);
  }

  /** The kubelet process dies; the container runtime keeps its containers running. */
  stopKubelet(name: string): void {
    const node = this.#node(name);
    if (!node.kubeletRunning) return;
    node.kubeletRunning = false;
    this.#log("kubelet.stopped", `kubelet on ${name} stopped; its containers keep running`, name);
  }

  startKubelet(name: string): void {
    const node = this.#node(name);
    if (node.kubeletRunning || node.power === "off" || node.crashed) return;
    node.kubeletRunning = true;
    this.#log("kubelet.started", `kubelet on ${name} started`, name);
  }

  /** While false, every ClusterApi call rejects (the API server is down for the remediator). */
  setApiAvailable(available: boolean): void {
    if (this.#apiAvailable === available) return;
    this.#apiAvailable = available;
    this.#log(available ? "api.available" : "api.unavailable", `API server ${available ? "available" : "unavailable"}`);
  }

  /** A graceful delete (kubectl delete, eviction): the kubelet must finish it. */
  requestPodDeletion(podName: string): void {
    const pod = this.#pods.get(podName);
    if (pod === undefined) return;
    this.#requestDeletion(pod, this.#clock.now(), "graceful delete");
  }

  /** Per-object API operations, for the simulated Kubernetes API server (`k8s-api/`). */

  /** Force-deletes (grace 0) one pod object; false when it does not exist (or has another uid). */
  forceDeletePod(podName: string, uid?: string): boolean {
    const pod = this.#pods.get(podName);
    if (pod === undefined || (uid !== undefined && pod.uid !== uid)) return false;
    this.#removePod(pod, "pod.force-deleted", "force-deleted (grace 0)");
    return true;
  }

  /** Deletes one VolumeAttachment; false when it does not exist. */
  deleteVolumeAttachment(volume: string, node: string): boolean {
    const va = this.#attachments.get(attachmentKey(volume, node));
    if (va === undefined) return false;
    this.#detach(va, "volume.detached", "VolumeAttachment deleted through the API");
    return true;
  }

  /** Test hook: with PodGC off, terminating pods of a dead node stay forever (out-of-service cannot finish). */
  setPodGcEnabled(enabled: boolean): void {
    this.#podGcEnabled = enabled;
  }

  // ---------------------------------------------------------------- ClusterApi

  async addTaint(name: string, taint: Taint): Promise<void> {
    this.#requireApi();
    const node = this.#nodes.get(name);
    if (node === undefined) throw new FencelineError(ErrorCode.NotFound, `node ${name} not found`);
    const existing = node.taints.findIndex((t) => sameTaint(t, taint));
    if (existing >= 0 && node.taints[existing]!.value === taint.value) return;
    const copy: Taint = { key: taint.key, effect: taint.effect, ...(taint.value === undefined ? {} : { value: taint.value }) };
    if (existing >= 0) node.taints[existing] = copy;
    else node.taints.push(copy);
    this.#log("taint.added", `taint ${formatTaint(taint)} on ${name}`, name);
  }

  async removeTaint(name: string, taint: Taint): Promise<void> {
    this.#requireApi();
    const node = this.#nodes.get(name);
    if (node === undefined) return;
    const before = node.taints.length;
    node.taints = node.taints.filter((t) => !sameTaint(t, taint));
    if (node.taints.length !== before) this.#log("taint.removed", `taint ${formatTaint(taint)} removed from ${name}`, name);
  }

  /**
   * The Node object is deleted (a decommissioned machine): PodGC deletes the pods bound to a
   * node that no longer exists, the attach-detach controller detaches its volumes, and nothing is
   * scheduled on it again. Kubernetes trusts whoever deleted it that the machine is gone: the
   * lab deletes only machines that are off.
   */
  deleteNode(name: string): void {
    const node = this.#node(name);
    if (node.deleted) return;
    node.deleted = true;
    this.#log("node.deleted", `node ${name} deleted`, name);
    for (const pod of [...this.#pods.values()])
      if (pod.node === name) this.#removePod(pod, "pod.force-deleted", "removed by PodGC (its node was deleted)");
    for (const va of [...this.#attachments.values()])
      if (va.node === name) this.#detach(va, "volume.detached", "detached: its node was deleted");
  }

  /** Every pod but the DaemonSet's (their controller would put them straight back). */
  async deletePods(name: string): Promise<number> {
    this.#requireApi();
    let deleted = 0;
    for (const pod of [...this.#pods.values()]) {
      if (pod.node !== name || this.#isDaemonPod(pod)) continue;
      this.#removePod(pod, "pod.force-deleted", "force-deleted (grace 0)");
      deleted++;
    }
    return deleted;
  }

  /** The pods the out-of-service taint evicted (terminating, not a DaemonSet's). */
  async deleteEvictedPods(name: string): Promise<number> {
    this.#requireApi();
    let deleted = 0;
    for (const pod of [...this.#pods.values()]) {
      if (pod.node !== name || this.#isDaemonPod(pod) || pod.phase !== "Terminating") continue;
      this.#removePod(pod, "pod.force-deleted", "force-deleted (grace 0) after the out-of-service eviction");
      deleted++;
    }
    return deleted;
  }

  /** Pods that must move (not the DaemonSet's) and the VolumeAttachments on the node. */
  async countWorkloads(name: string): Promise<{ pods: number; volumeAttachments: number }> {
    this.#requireApi();
    let pods = 0;
    for (const pod of this.#pods.values()) if (pod.node === name && !this.#isDaemonPod(pod)) pods++;
    let volumeAttachments = 0;
    for (const va of this.#attachments.values()) if (va.node === name) volumeAttachments++;
    return { pods, volumeAttachments };
  }

  async serverVersion(): Promise<string> {
    this.#requireApi();
    return this.#serverVersion;
  }

  // ---------------------------------------------------------------- kubelets and controllers

  /** Runs one round of kubelets and controllers at `now`, then notifies step listeners. */
  step(now: number = this.#clock.now()): void {
    this.#nodeLifecycle(now);
    this.#podGc(now);
    for (const node of this.#nodes.values()) if (isResponsive(node)) this.#kubeletSync(node);
    this.#attachDetach(now);
    this.#runControllers(now);
    for (const node of this.#nodes.values()) if (isResponsive(node)) this.#kubeletStart(node, now);
    this.#updateReplicaDowntime(now);
    for (const listener of this.#stepListeners) listener(now);
  }

  /** Called at the end of every step; returns the unsubscribe function. */
  onStep(listener: (now: number) => void): () => void {
    this.#stepListeners.add(listener);
    return () => this.#stepListeners.delete(listener);
  }

  /** Node lifecycle eviction (when enabled) and the taint manager's NoExecute eviction. */
  #nodeLifecycle(now: number): void {
    for (const node of this.#nodes.values()) {
      const responsive = isResponsive(node);
      if (responsive) node.unresponsiveSince = undefined;
      else node.unresponsiveSince ??= now;
      const evict =
        !responsive && this.#unreachableEvictionMs !== null && now - (node.unresponsiveSince ?? now) >= this.#unreachableEvictionMs;
      if (evict) this.#evictPodsOf(node, now, "node unresponsive, evicted by the node lifecycle controller");
      else if (node.taints.some((t) => t.effect === "NoExecute")) this.#evictPodsOf(node, now, "NoExecute taint");
    }
  }

  /** Taint eviction spares the pods that tolerate every taint (the DaemonSet's). */
  #evictPodsOf(node: SimNode, now: number, reason: string): void {
    for (const pod of this.#pods.values()) if (pod.node === node.name && !this.#isDaemonPod(pod)) this.#requestDeletion(pod, now, reason);
  }

  /** NotReady in the API: unresponsive for longer than the node monitor grace period. */
  #notReady(node: SimNode, now: number): boolean {
    return node.unresponsiveSince !== undefined && now - node.unresponsiveSince >= this.#gracePeriodMs;
  }

  /**
   * Every 20 s, PodGC force-deletes the terminating pods of nodes that carry the out-of-service
   * taint **and are NotReady** (a Ready node with the taint is not enough).
   */
  #podGc(now: number): void {
    if (!this.#podGcEnabled || now < this.#nextPodGc) return;
    this.#nextPodGc = now + this.#podGcPeriodMs;
    for (const node of this.#nodes.values()) {
      if (!this.#notReady(node, now) || !hasOutOfServiceTaint(node)) continue;
      for (const pod of [...this.#pods.values()]) {
        if (pod.node === node.name && pod.phase === "Terminating") {
          this.#removePod(pod, "pod.force-deleted", "removed by PodGC (out-of-service taint)");
        }
      }
    }
  }

  /** A responsive kubelet stops what was deleted and finishes graceful deletions. */
  #kubeletSync(node: SimNode): void {
    for (const container of [...this.#containers.values()]) {
      if (container.node !== node.name) continue;
      const pod = this.#pods.get(container.pod);
      if (pod !== undefined && pod.uid === container.uid && pod.phase !== "Terminating") continue;
      this.#stopContainer(container, pod === undefined || pod.uid !== container.uid ? "pod object gone" : "pod terminating");
    }
    for (const pod of [...this.#pods.values()]) {
      if (pod.node === node.name && pod.phase === "Terminating") this.#removePod(pod, "pod.deleted", "terminated by the kubelet");
    }
  }

  #attachDetach(now: number): void {
    for (const va of [...this.#attachments.values()]) {
      const needed = [...this.#pods.values()].some((p) => p.node === va.node && p.volume === va.volume);
      if (needed) {
        va.unneededSince = undefined;
        continue;
      }
      const node = this.#nodes.get(va.node);
      if (node === undefined || isResponsive(node)) {
        this.#detach(va, "volume.detached", "no pod on the node uses it");
        continue;
      }
      if (hasOutOfServiceTaint(node)) {
        this.#detach(va, "volume.force-detached", "force-detached (out-of-service taint)");
        continue;
      }
      va.unneededSince ??= now;
      if (this.#forceDetachTimeoutMs !== null && now - va.unneededSince >= this.#forceDetachTimeoutMs) {
        this.#detach(va, "volume.force-detached", `force-detached after ${this.#forceDetachTimeoutMs} ms unmount timeout`);
      }
    }
  }

  #runControllers(now: number): void {
    for (const workload of this.#workloads.values()) {
      if (workload.kind === "DaemonSet") {
        // One pod per node, whatever its state or taints (it tolerates them all).
        for (const node of this.#nodes.values()) {
          const name = `${workload.name}-${node.name}`;
          if (!this.#pods.has(name)) this.#createPod(name, node.name, workload, undefined, undefined, now);
        }
      } else if (workload.kind === "StatefulSet") {
        // A StatefulSet re-creates a replica only once its old pod object is fully gone.
        for (let ordinal = 0; ordinal < workload.replicas; ordinal++) {
          const name = `${workload.name}-${ordinal}`;
          if (this.#pods.has(name)) continue;
          const node = this.#placement(now);
          if (node === undefined) continue;
          this.#createPod(name, node, workload, ordinal, `data-${name}`, now);
        }
      } else {
        // A ReplicaSet counts only pods without a deletion request, so it replaces terminating ones.
        let active = 0;
        for (const pod of this.#pods.values()) if (pod.workload === workload.name && pod.phase !== "Terminating") active++;
        for (; active < workload.replicas; active++) {
          const node = this.#placement(now);
          if (node === undefined) break;
          this.#createPod(`${workload.name}-${workload.nextPodSuffix++}`, node, workload, undefined, undefined, now);
        }
      }
    }
  }

  /**
   * Least-loaded schedulable node, ties by name. The scheduler knows only what the API says: a
   * node that crashed a moment ago is still Ready and untainted until the node lifecycle
   * controller's grace period passes (it then taints it not-ready/unreachable), so pods may be
   * bound to it until someone taints it (Fenceline's NoSchedule taint does, at once).
   */
  #placement(now: number): string | undefined {
    let best: { name: string; load: number } | undefined;
    for (const node of [...this.#nodes.values()].sort((a, b) => compare(a.name, b.name))) {
      if (!isSchedulable(node) || this.#notReady(node, now)) continue;
      let load = 0;
      for (const pod of this.#pods.values()) if (pod.node === node.name && pod.phase !== "Terminating") load++;
      if (best === undefined || load < best.load) best = { name: node.name, load };
    }
    return best?.name;
  }

  #createPod(name: string, node: string, workload: Workload, ordinal: number | undefined, volume: string | undefined, now: number): void {
    const pod: Pod = {
      name,
      uid: `${name}#${this.#nextUid++}`,
      node,
      workload: workload.name,
      ordinal,
      volume,
      phase: "Pending",
      createdAt: now,
      deletionRequestedAt: undefined,
      attachRefused: false,
    };
    this.#pods.set(name, pod);
    this.#log("pod.created", `pod ${name} (${pod.uid}) created on ${node}`, node);
  }

  /** A responsive kubelet attaches volumes and starts the pods bound to it that do not run. */
  #kubeletStart(node: SimNode, now: number): void {
    for (const pod of this.#pods.values()) {
      if (pod.node !== node.name || pod.phase === "Terminating") continue;
      if (this.#containers.has(pod.uid)) continue;
      if (pod.volume !== undefined && !this.#attach(pod, node.name, now)) continue;
      const started: Container = {
        pod: pod.name,
        uid: pod.uid,
        node: node.name,
        workload: pod.workload,
        ordinal: pod.ordinal,
        volume: pod.volume,
        startedAt: now,
      };
      this.#containers.set(pod.uid, started);
      pod.phase = "Running";
      this.#log("container.started", `pod ${pod.name} (${pod.uid}) running on ${node.name}`, node.name);
    }
  }

  /** The attach-detach controller refuses to attach a ReadWriteOnce volume attached elsewhere. */
  #attach(pod: Pod, node: string, now: number): boolean {
    const volume = pod.volume!;
    const attachments = [...this.#attachments.values()].filter((va) => va.volume === volume);
    if (attachments.some((va) => va.node === node)) return true;
    const elsewhere = attachments[0];
    if (elsewhere !== undefined) {
      if (!pod.attachRefused) {
        pod.attachRefused = true;
        this.#log("volume.attach-refused", `volume ${volume} for pod ${pod.name} on ${node}: still attached to ${elsewhere.node}`, node);
      }
      pod.phase = "Pending";
      return false;
    }
    pod.attachRefused = false;
    this.#attachments.set(attachmentKey(volume, node), { volume, node, attachedAt: now, unneededSince: undefined });
    this.#log("volume.attached", `volume ${volume} attached to ${node}`, node);
    return true;
  }

  #updateReplicaDowntime(now: number): void {
    for (const replica of this.#replicaIdentities()) {
      const running = this.#isReplicaRunning(replica.replica);
      if (running) this.#replicaDownSince.delete(replica.replica);
      else if (!this.#replicaDownSince.has(replica.replica)) this.#replicaDownSince.set(replica.replica, now);
    }
  }

  // ---------------------------------------------------------------- read-only views

  nodes(): NodeView[] {
    return [...this.#nodes.values()].map(nodeView);
  }

  node(name: string): NodeView | undefined {
    const node = this.#nodes.get(name);
    return node === undefined ? undefined : nodeView(node);
  }

  /** Pod objects as the API server holds them. */
  pods(): PodView[] {
    return [...this.#pods.values()].map(podView);
  }

  pod(name: string): PodView | undefined {
    const pod = this.#pods.get(name);
    return pod === undefined ? undefined : podView(pod);
  }

  /** What actually runs on the machines. */
  containers(): ContainerView[] {
    return [...this.#containers.values()].map((c) => withoutUndefined(c) as ContainerView);
  }

  volumeAttachments(): VolumeAttachmentView[] {
    return [...this.#attachments.values()].map(({ volume, node, attachedAt }) => ({ volume, node, attachedAt }));
  }

  workloads(): WorkloadView[] {
    return [...this.#workloads.values()].map(({ name, kind, replicas }) => ({ name, kind, replicas }));
  }

  /** Every StatefulSet replica identity, where it actually runs and since when it runs nowhere. */
  replicas(): ReplicaStatus[] {
    return this.#replicaIdentities().map((r) => {
      const runningOn = [...this.#containers.values()].filter((c) => c.pod === r.replica && c.ordinal !== undefined).map((c) => c.node);
      const downSince = runningOn.length === 0 ? this.#replicaDownSince.get(r.replica) : undefined;
      return { ...r, runningOn, ...(downSince === undefined ? {} : { downSince }) };
    });
  }

  /** The log of every state change, oldest first. */
  events(): readonly ClusterEvent[] {
    return this.#events;
  }

  /** The event log as text, one line per event, to explain a failing run. */
  formatEvents(): string {
    return this.#events.map((e) => `${e.at} ${e.kind} ${e.what}`).join("\n");
  }

  // ---------------------------------------------------------------- internals

  #isDaemonPod(pod: Pod): boolean {
    return this.#workloads.get(pod.workload)?.kind === "DaemonSet";
  }

  #replicaIdentities(): { replica: string; workload: string; volume: string }[] {
    const out: { replica: string; workload: string; volume: string }[] = [];
    for (const w of this.#workloads.values()) {
      if (w.kind !== "StatefulSet") continue;
      for (let i = 0; i < w.replicas; i++) out.push({ replica: `${w.name}-${i}`, workload: w.name, volume: `data-${w.name}-${i}` });
    }
    return out;
  }

  #isReplicaRunning(replica: string): boolean {
    for (const c of this.#containers.values()) if (c.pod === replica && c.ordinal !== undefined) return true;
    return false;
  }

  #requestDeletion(pod: Pod, now: number, reason: string): void {
    if (pod.phase === "Terminating") return;
    pod.phase = "Terminating";
    pod.deletionRequestedAt = now;
    this.#log("pod.deletion-requested", `pod ${pod.name} (${pod.uid}) on ${pod.node} terminating: ${reason}`, pod.node);
  }

  #removePod(pod: Pod, kind: "pod.deleted" | "pod.force-deleted", reason: string): void {
    this.#pods.delete(pod.name);
    this.#log(kind, `pod ${pod.name} (${pod.uid}) on ${pod.node} ${reason}`, pod.node);
  }

  #detach(va: VolumeAttachment, kind: "volume.detached" | "volume.force-detached", reason: string): void {
    this.#attachments.delete(attachmentKey(va.volume, va.node));
    this.#log(kind, `volume ${va.volume} detached from ${va.node}: ${reason}`, va.node);
  }

  #stopContainersOn(node: string, reason: string): void {
    const now = this.#clock.now();
    for (const container of [...this.#containers.values()]) {
      if (container.node === node) this.#stopContainer(container, reason);
    }
    this.#updateReplicaDowntime(now);
  }

  #stopContainer(container: Container, reason: string): void {
    this.#containers.delete(container.uid);
    this.#log("container.stopped", `pod ${container.pod} (${container.uid}) stopped on ${container.node}: ${reason}`, container.node);
  }

  #node(name: string): SimNode {
    const node = this.#nodes.get(name);
    if (node === undefined) throw new FencelineError(ErrorCode.NotFound, `node ${name} not found`);
    return node;
  }

  #requireApi(): void {
    if (!this.#apiAvailable) throw new FencelineError(ErrorCode.Timeout, "simulated API server unavailable");
  }

  #log(kind: ClusterEventKind, what: string, node?: string): void {
    this.#events.push({ at: this.#clock.now(), kind, what, ...(node === undefined ? {} : { node }) });
  }
}

/** The kubelet runs and can talk to the API server. */
function isResponsive(node: SimNode): boolean {
  return node.power === "on" && !node.crashed && node.kubeletRunning && node.reachable;
}

function isSchedulable(node: SimNode): boolean {
  return !node.deleted && !node.taints.some((t) => t.effect === "NoSchedule" || t.effect === "NoExecute");
}

function hasOutOfServiceTaint(node: SimNode): boolean {
  return node.taints.some((t) => sameTaint(t, OUT_OF_SERVICE_TAINT));
}

/** Kubernetes identifies a taint on a node by key and effect. */
function sameTaint(a: Taint, b: Taint): boolean {
  return a.key === b.key && a.effect === b.effect;
}

function formatTaint(t: Taint): string {
  return `${t.key}${t.value === undefined ? "" : `=${t.value}`}:${t.effect}`;
}

function attachmentKey(volume: string, node: string): string {
  return `${volume}@${node}`;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function nodeView(n: SimNode): NodeView {
  return {
    name: n.name,
    taints: n.taints.map((t) => ({ ...t })),
    power: n.power,
    crashed: n.crashed,
    kubeletRunning: n.kubeletRunning,
    reachable: n.reachable,
    bootId: n.bootId,
  };
}

function podView(p: Pod): PodView {
  const { attachRefused: _attachRefused, ...rest } = p;
  return withoutUndefined(rest) as PodView;
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
