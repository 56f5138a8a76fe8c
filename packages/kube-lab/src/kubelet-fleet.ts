import { isConflict, isNotFound, type KubeClient, type KubeObject } from "./kube-client.js";
import { keyOf, startInformer, type Informer } from "./informer.js";
import { createSyncQueue } from "./sync-queue.js";

/** The CSI driver the simulated machines and their attacher implement. */
export const CSI_DRIVER = "csi.fenceline.io";
/** Every node of a fleet carries it (value: the fleet's id), so a test sees only its own. */
export const FLEET_LABEL = "kube-lab.fenceline.io/fleet";
export const ZONE_LABEL = "topology.kubernetes.io/zone";
/** Without it the attach-detach controller ignores the node's volumes (the kubelet sets it by default). */
const CONTROLLER_MANAGED_ATTACH = "volumes.kubernetes.io/controller-managed-attach-detach";
const ATTACHER_FINALIZER = `external-attacher/${CSI_DRIVER.replace(/\./g, "-")}`;
const MIRROR_ANNOTATION = "kubernetes.io/config.mirror";

/** A pod's processes as they really run on a machine, whatever the API server says. */
export type Container = {
  /** namespace/name */
  readonly pod: string;
  readonly uid: string;
  readonly node: string;
  /** The owning workload (namespace/name), or the pod itself. */
  readonly workload: string;
  /** A StatefulSet replica's ordinal. */
  readonly ordinal?: number;
  /** The CSI volume handle it has mounted. */
  readonly volume?: string;
  readonly startedAt: number;
};

/** A volume attached to a machine in the storage backend (what ControllerPublish did). */
export type BackendAttachment = { readonly volume: string; readonly node: string; readonly attachedAt: number };

export type ReplicaTruth = { replica: string; workload: string; volume: string; runningOn: string[]; downSince?: number };

export type MachineEvent = { at: number; node: string; what: string };

export type KubeletFleetOptions = {
  /** An admin client: the fleet watches as admin and acts as each node (impersonating system:node:NAME). */
  admin: KubeClient;
  nodes: readonly string[];
  /** Labels every node gets; FLEET_LABEL is set to `fleet`, the zone label to `zone`. */
  fleet: string;
  /** The node lifecycle controller counts zones separately: a fleet in its own zone disturbs no other. Default: the fleet id. */
  zone?: string;
  labels?: Record<string, string>;
  /** Lease renewal period (the kubelet's default: 10 s, a quarter of the 40 s lease). */
  leaseRenewMs?: number;
  /** How long the storage backend takes to attach or detach (default 50 ms). */
  attachDelayMs?: number;
  /** Each node also runs a static pod, whose mirror pod the kubelet creates in this namespace. */
  staticPodNamespace?: string;
  onEvent?: (event: MachineEvent) => void;
};

type VolumeRef = { unique: string; handle: string };

type Machine = {
  name: string;
  power: "on" | "off";
  crashed: boolean;
  kubeletRunning: boolean;
  reachable: boolean;
  bootId: string;
  boots: number;
  /** Bumped whenever the kubelet starts or stops talking: work begun before it is void. */
  generation: number;
  api: KubeClient;
  containers: Map<string, Container>;
  /** Pods whose volumes the kubelet has asked for (uid → volumes). */
  wanted: Map<string, VolumeRef[]>;
  reported: { status: string; pods: Map<string, string> };
  /** Syncs a pod (namespace/name) on this machine: one sync at a time per pod, a change during one runs it again after. */
  queuePod: (key: string) => void;
  ipCounter: number;
  index: number;
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const microTime = (ms = Date.now()) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
const rfc3339 = (ms = Date.now()) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
const online = (m: Machine) => m.power === "on" && !m.crashed && m.kubeletRunning && m.reachable;
const ownerOf = (pod: KubeObject) => pod.metadata.ownerReferences?.find((o) => o.controller) ?? pod.metadata.ownerReferences?.[0];

/**
 * Simulated machines with kubelets against a real API server, and the CSI driver's attacher.
 *
 * Each machine's kubelet, while it runs and reaches the API server, does what a kubelet does
 * that the control plane depends on: registers its Node (Ready, capacity, boot id, the
 * controller-managed attach annotation) and its CSINode, renews its Lease in kube-node-lease,
 * starts the pods the scheduler bound to it once the attach-detach controller reports their
 * CSI volumes attached (node.status.volumesAttached), reports them Running and Ready, reports
 * the volumes it uses (node.status.volumesInUse), finishes graceful deletes (stop, then delete
 * with grace 0 and a uid precondition), and kills the containers of pods whose objects are
 * gone. It acts as `system:node:NAME` in `system:nodes`, so the Node authorizer and
 * NodeRestriction check it. The attacher plays external-attacher and the storage backend:
 * it attaches what a VolumeAttachment asks for (finalizer, status.attached) and detaches when
 * the VolumeAttachment is deleted.
 *
 * The machines hold the ground truth: which containers really run where and which volumes the
 * backend has attached where. A crashed machine stops everything and its kubelet falls silent;
 * a machine cut off from the network keeps its containers running while its kubelet cannot
 * reach the API server. The backend does not refuse a second attachment (some storage does
 * not): the invariants are checked on the truth, not trusted to the storage.
 *
 * The machine methods (crash, boot, setReachable, startKubelet, stopKubelet, powerOff) are the
 * ones `@fenceline/sim`'s SimFleet drives.
 */
export class KubeletFleet {
  readonly fleet: string;
  readonly zone: string;
  readonly events: MachineEvent[] = [];
  readonly #options: KubeletFleetOptions;
  readonly #admin: KubeClient;
  readonly #machines = new Map<string, Machine>();
  readonly #backend = new Map<string, BackendAttachment[]>();
  readonly #replicas = new Map<string, { workload: string; volume: string; downSince?: number }>();
  readonly #queueAttachment = createSyncQueue({
    sync: (name) => this.#syncAttachment(name),
    active: () => !this.#stopped,
    onError: (name, err) => this.#note("attacher", `${name}: ${err.message}`),
  });
  readonly #volumeOfClaim = new Map<string, VolumeRef>();
  #pods: Informer | null = null;
  #nodes: Informer | null = null;
  #attachments: Informer | null = null;
  #timers: NodeJS.Timeout[] = [];
  #stopped = false;

  constructor(options: KubeletFleetOptions) {
    this.#options = options;
    this.#admin = options.admin;
    this.fleet = options.fleet;
    this.zone = options.zone ?? options.fleet;
    options.nodes.forEach((name, index) => {
      const machine = () => this.#machines.get(name)!;
      this.#machines.set(name, {
        name,
        power: "on",
        crashed: false,
        kubeletRunning: true,
        reachable: true,
        bootId: `${name}-boot-1`,
        boots: 1,
        generation: 0,
        api: options.admin.as({ user: `system:node:${name}`, groups: ["system:nodes", "system:authenticated"] }),
        containers: new Map(),
        wanted: new Map(),
        reported: { status: "", pods: new Map() },
        queuePod: createSyncQueue({
          sync: (key) => this.#syncPod(machine(), key),
          active: () => online(machine()) && !this.#stopped,
          onError: (key, err) => this.#note(name, `sync ${key} failed: ${err.message}`),
        }),
        ipCounter: 1,
        index,
      });
    });
  }

  get nodes(): string[] {
    return [...this.#machines.keys()];
  }

  /** Registers every node (Node, CSINode, Lease), starts the informers, kubelets and the attacher. */
  async start(): Promise<void> {
    await this.#ensureCsiDriver();
    this.#nodes = startInformer(this.#admin, "/api/v1/nodes", { labelSelector: `${FLEET_LABEL}=${this.fleet}` }, (c) =>
      this.#onNode(c.object),
    );
    this.#pods = startInformer(this.#admin, "/api/v1/pods", undefined, (c) => this.#onPod(c.object));
    this.#attachments = startInformer(this.#admin, "/apis/storage.k8s.io/v1/volumeattachments", undefined, (c) =>
      this.#onAttachment(c.object),
    );
    await Promise.all([this.#nodes.synced, this.#pods.synced, this.#attachments.synced]);
    await Promise.all([...this.#machines.values()].map((m) => this.#register(m)));
    const renew = this.#options.leaseRenewMs ?? 10_000;
    this.#timers.push(setInterval(() => this.#machines.forEach((m) => void this.#renewLease(m)), renew));
    // The kubelet's periodic sync: anything an event did not trigger (a retry after an error).
    this.#timers.push(setInterval(() => this.#machines.forEach((m) => online(m) && this.#syncAll(m)), 2_000));
    this.#timers.push(setInterval(() => this.#attachments?.items().forEach((va) => this.#queueAttachment(va.metadata.name)), 5_000));
  }

  // ------------------------------------------------------------------ machines (SimFleet's port)

  /** Hard crash: every container stops, the kubelet falls silent; volumes stay attached in the backend. */
  crash(name: string): void {
    const m = this.#machine(name);
    m.crashed = true;
    m.kubeletRunning = false;
    m.generation++;
    this.#note(name, "crashed");
    this.#stopAll(m, "machine crashed");
  }

  powerOff(name: string): void {
    const m = this.#machine(name);
    m.power = "off";
    m.crashed = false;
    m.kubeletRunning = false;
    m.generation++;
    this.#note(name, "powered off");
    this.#stopAll(m, "machine powered off");
  }

  /** The machine boots (again): nothing runs; its kubelet starts unless a boot gate holds it. */
  boot(name: string, newBootId?: string, options: { kubelet?: boolean } = {}): void {
    const m = this.#machine(name);
    this.#stopAll(m, "machine rebooted");
    m.boots++;
    m.bootId = newBootId ?? `${name}-boot-${m.boots}`;
    m.power = "on";
    m.crashed = false;
    m.kubeletRunning = options.kubelet ?? true;
    m.wanted.clear();
    m.reported = { status: "", pods: new Map() };
    m.generation++;
    this.#note(name, `booted (boot ${m.bootId})${m.kubeletRunning ? "" : ", kubelet held"}`);
    if (online(m)) void this.#comeOnline(m);
  }

  /** Network loss or its end: the containers keep running; the kubelet cannot reach the API server. */
  setReachable(name: string, reachable: boolean): void {
    const m = this.#machine(name);
    if (m.reachable === reachable) return;
    m.reachable = reachable;
    m.generation++;
    this.#note(name, reachable ? "reachable again" : "cut off from the network");
    if (online(m)) void this.#comeOnline(m);
  }

  startKubelet(name: string): void {
    const m = this.#machine(name);
    if (m.kubeletRunning || m.power === "off" || m.crashed) return;
    m.kubeletRunning = true;
    m.generation++;
    this.#note(name, "kubelet started");
    if (online(m)) void this.#comeOnline(m);
  }

  /** The kubelet process dies; the containers keep running. */
  stopKubelet(name: string): void {
    const m = this.#machine(name);
    if (!m.kubeletRunning) return;
    m.kubeletRunning = false;
    m.generation++;
    this.#note(name, "kubelet stopped; its containers keep running");
  }

  machine(name: string) {
    const m = this.#machine(name);
    return {
      name,
      power: m.power,
      crashed: m.crashed,
      kubeletRunning: m.kubeletRunning,
      reachable: m.reachable,
      bootId: m.bootId,
      online: online(m),
    };
  }

  // ------------------------------------------------------------------ ground truth

  /** Every container running on every machine of the fleet. */
  containers(): Container[] {
    return [...this.#machines.values()].flatMap((m) => [...m.containers.values()]);
  }

  /** The storage backend's attachments (volume handle → machine). */
  volumeAttachments(): BackendAttachment[] {
    return [...this.#backend.values()].flat();
  }

  /** Every StatefulSet replica seen on the fleet, where it runs now, since when it runs nowhere. */
  replicas(): ReplicaTruth[] {
    const now = Date.now();
    const out: ReplicaTruth[] = [];
    for (const [replica, info] of this.#replicas) {
      const runningOn = this.containers()
        .filter((c) => c.pod === replica && c.ordinal !== undefined)
        .map((c) => c.node);
      if (runningOn.length > 0) delete info.downSince;
      else info.downSince ??= now;
      out.push({
        replica,
        workload: info.workload,
        volume: info.volume,
        runningOn,
        ...(info.downSince === undefined ? {} : { downSince: info.downSince }),
      });
    }
    return out;
  }

  /** The machine events and kubelet actions so far, one line each (to explain a failing test). */
  formatEvents(): string {
    return this.events.map((e) => `${new Date(e.at).toISOString().slice(11, 23)} ${e.node} ${e.what}`).join("\n");
  }

  /** Stops every kubelet and the attacher; with `deleteNodes`, removes the Node objects (their Leases and CSINodes go with them). */
  async stop(options: { deleteNodes?: boolean } = {}): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    this.#pods?.stop();
    this.#nodes?.stop();
    this.#attachments?.stop();
    for (const m of this.#machines.values()) m.generation++;
    if (options.deleteNodes) {
      await Promise.all(this.nodes.map((n) => this.#admin.delete(`/api/v1/nodes/${n}`).catch(() => false)));
      await Promise.all(
        this.nodes.map((n) => this.#admin.delete(`/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${n}`).catch(() => false)),
      );
    }
  }

  // ------------------------------------------------------------------ kubelet

  #machine(name: string): Machine {
    const m = this.#machines.get(name);
    if (!m) throw new Error(`no machine ${name} in fleet ${this.fleet}`);
    return m;
  }

  #note(node: string, what: string) {
    const event = { at: Date.now(), node, what };
    this.events.push(event);
    this.#options.onEvent?.(event);
  }

  /** Runs `fn` unless the kubelet's life changed since `generation` (then the request never happened). */
  #live(m: Machine, generation: number): boolean {
    return !this.#stopped && online(m) && m.generation === generation;
  }

  #stopAll(m: Machine, why: string) {
    for (const c of [...m.containers.values()]) this.#stopContainer(m, c, why);
  }

  #stopContainer(m: Machine, c: Container, why: string) {
    if (!m.containers.delete(c.uid)) return;
    this.#note(m.name, `stopped ${c.pod} (${c.uid.slice(0, 8)}): ${why}`);
    this.replicas();
  }

  async #comeOnline(m: Machine) {
    const generation = m.generation;
    try {
      await this.#register(m);
    } catch (err) {
      if (this.#live(m, generation)) this.#note(m.name, `registration failed: ${(err as Error).message}`);
      return;
    }
    if (this.#live(m, generation)) this.#syncAll(m);
  }

  async #register(m: Machine) {
    const generation = m.generation;
    const node = {
      apiVersion: "v1",
      kind: "Node",
      metadata: {
        name: m.name,
        labels: {
          ...this.#options.labels,
          [FLEET_LABEL]: this.fleet,
          [ZONE_LABEL]: this.zone,
          "kubernetes.io/hostname": m.name,
          "kubernetes.io/os": "linux",
          "kubernetes.io/arch": "amd64",
        },
        annotations: { [CONTROLLER_MANAGED_ATTACH]: "true", "csi.volume.kubernetes.io/nodeid": JSON.stringify({ [CSI_DRIVER]: m.name }) },
      },
      spec: {},
    };
    if (!this.#nodes?.get(m.name)) {
      try {
        await m.api.create("/api/v1/nodes", node);
        this.#note(m.name, "registered its Node");
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
    }
    if (m.generation !== generation || !online(m) || this.#stopped) return;
    await this.#reportNodeStatus(m, true);
    await this.#renewLease(m);
    const uid = (await m.api.get(`/api/v1/nodes/${m.name}`)).metadata.uid;
    try {
      await m.api.create("/apis/storage.k8s.io/v1/csinodes", {
        apiVersion: "storage.k8s.io/v1",
        kind: "CSINode",
        metadata: { name: m.name, ownerReferences: [{ apiVersion: "v1", kind: "Node", name: m.name, uid }] },
        spec: { drivers: [{ name: CSI_DRIVER, nodeID: m.name, topologyKeys: null }] },
      });
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
    if (this.#options.staticPodNamespace) await this.#ensureMirrorPod(m, uid!);
  }

  async #ensureMirrorPod(m: Machine, nodeUid: string) {
    const ns = this.#options.staticPodNamespace!;
    const name = `static-agent-${m.name}`;
    try {
      await m.api.create(`/api/v1/namespaces/${ns}/pods`, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name,
          namespace: ns,
          annotations: {
            [MIRROR_ANNOTATION]: `mirror-${m.name}`,
            "kubernetes.io/config.source": "file",
            "kubernetes.io/config.hash": `mirror-${m.name}`,
          },
          ownerReferences: [{ apiVersion: "v1", kind: "Node", name: m.name, uid: nodeUid, controller: true }],
        },
        spec: { nodeName: m.name, containers: [{ name: "static", image: "registry.invalid/static:1" }] },
      });
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
  }

  /** Node status as the kubelet posts it: Ready, capacity, boot id, the volumes it uses. */
  async #reportNodeStatus(m: Machine, force = false) {
    const generation = m.generation;
    if (!online(m)) return;
    const volumesInUse = [...new Set([...m.wanted.values()].flat().map((v) => v.unique))].sort();
    const summary = JSON.stringify({ boot: m.bootId, volumesInUse });
    if (!force && summary === m.reported.status) return;
    const now = rfc3339();
    const condition = (type: string, status: string, reason: string, message: string) => ({
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: now,
    });
    const previous = this.#nodes?.get(m.name)?.status?.conditions as
      | Array<{ type: string; status: string; lastTransitionTime?: string }>
      | undefined;
    const transition = (type: string, status: string) => {
      const old = previous?.find((c) => c.type === type);
      return old && old.status === status && old.lastTransitionTime ? old.lastTransitionTime : now;
    };
    const conditions = [
      condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
      condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
      condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
      condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ].map((c) => ({ ...c, lastTransitionTime: transition(c.type, c.status) }));
    const body = {
      status: {
        capacity: { cpu: "8", memory: "32Gi", pods: "110", "ephemeral-storage": "100Gi" },
        allocatable: { cpu: "8", memory: "32Gi", pods: "110", "ephemeral-storage": "100Gi" },
        conditions,
        addresses: [
          { type: "InternalIP", address: `10.${100 + (hash(this.fleet) % 100)}.0.${m.index + 1}` },
          { type: "Hostname", address: m.name },
        ],
        daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
        nodeInfo: {
          machineID: `${m.name}-machine`,
          systemUUID: `${m.name}-uuid`,
          bootID: m.bootId,
          kernelVersion: "6.1.0-kube-lab",
          osImage: "kube-lab simulated machine",
          containerRuntimeVersion: "kube-lab://1",
          kubeletVersion: "v1.37.2",
          kubeProxyVersion: "",
          operatingSystem: "linux",
          architecture: "amd64",
        },
        volumesInUse,
      },
    };
    await m.api.patch(`/api/v1/nodes/${m.name}/status`, body, { strategic: true });
    if (m.generation === generation) m.reported.status = summary;
  }

  async #renewLease(m: Machine) {
    if (!online(m) || this.#stopped) return;
    const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${m.name}`;
    const spec = { holderIdentity: m.name, leaseDurationSeconds: 40, renewTime: microTime() };
    try {
      await m.api.patch(path, { spec });
    } catch (err) {
      if (!isNotFound(err)) return;
      const node = this.#nodes?.get(m.name);
      await m.api
        .create("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: {
            name: m.name,
            namespace: "kube-node-lease",
            ...(node?.metadata.uid ? { ownerReferences: [{ apiVersion: "v1", kind: "Node", name: m.name, uid: node.metadata.uid }] } : {}),
          },
          spec,
        })
        .catch(() => {});
    }
  }

  #onNode(node: KubeObject) {
    const m = this.#machines.get(node.metadata.name);
    // A node's attached volumes changed: pods waiting for them may start.
    if (m && online(m)) for (const uid of m.wanted.keys()) if (!m.containers.has(uid)) this.#syncAll(m);
  }

  #onPod(pod: KubeObject) {
    const nodeName = pod.spec?.nodeName as string | undefined;
    const owner = ownerOf(pod);
    if (nodeName && owner?.kind === "StatefulSet" && this.#machines.has(nodeName)) {
      const id = keyOf(pod);
      if (!this.#replicas.has(id)) this.#replicas.set(id, { workload: `${pod.metadata.namespace}/${owner.name}`, volume: "" });
    }
    const key = keyOf(pod);
    for (const m of this.#machines.values()) {
      if (!online(m)) continue;
      const mine = nodeName === m.name || [...m.containers.values()].some((c) => c.pod === key);
      if (mine) m.queuePod(key);
    }
  }

  #syncAll(m: Machine) {
    const keys = new Set<string>([...m.containers.values()].map((c) => c.pod));
    for (const pod of this.#pods?.items() ?? []) if (pod.spec?.nodeName === m.name) keys.add(keyOf(pod));
    for (const key of keys) m.queuePod(key);
    void this.#reportNodeStatus(m).catch(() => {});
    // A static pod's mirror pod that was deleted comes back while the kubelet runs.
    const ns = this.#options.staticPodNamespace;
    const uid = this.#nodes?.get(m.name)?.metadata.uid;
    if (ns && uid && !this.#pods?.get(`${ns}/static-agent-${m.name}`)) void this.#ensureMirrorPod(m, uid).catch(() => {});
  }

  async #syncPod(m: Machine, key: string) {
    const generation = m.generation;
    if (!this.#live(m, generation)) return;
    const pod = this.#pods?.get(key);
    const uid = pod?.metadata.uid;
    // Containers whose pod object is gone (or is another object now, or bound elsewhere) are killed.
    for (const c of [...m.containers.values()]) {
      if (c.pod !== key) continue;
      if (!pod || c.uid !== uid || pod.spec?.nodeName !== m.name) {
        this.#stopContainer(m, c, "its pod object is gone");
        m.wanted.delete(c.uid);
      }
    }
    if (!pod || !uid || pod.spec?.nodeName !== m.name) {
      await this.#reportNodeStatus(m);
      return;
    }
    const phase = pod.status?.phase as string | undefined;
    if (pod.metadata.deletionTimestamp) {
      // Graceful delete: stop, release the volumes, report the end, delete with grace 0.
      const c = m.containers.get(uid);
      if (c) this.#stopContainer(m, c, "pod deleted");
      m.wanted.delete(uid);
      await this.#reportNodeStatus(m);
      if (!this.#live(m, generation)) return;
      if (phase !== "Failed" && phase !== "Succeeded") await this.#patchPodStatus(m, pod, "terminated").catch(() => {});
      if (!this.#live(m, generation)) return;
      await m.api
        .delete(`/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}`, { gracePeriodSeconds: 0, preconditions: { uid } })
        .catch((err: unknown) => {
          if (!isConflict(err)) throw err;
        });
      this.#note(m.name, `finished deleting ${key}`);
      return;
    }
    if (phase === "Failed" || phase === "Succeeded") return;
    if (pod.metadata.annotations?.[MIRROR_ANNOTATION]) {
      if (!m.containers.has(uid)) this.#startContainer(m, pod, undefined);
      if (m.reported.pods.get(uid) !== "running") await this.#patchPodStatus(m, pod, "running");
      return;
    }
    if (!m.containers.has(uid)) {
      const volumes = await this.#volumesOf(m, pod);
      if (volumes === null || !this.#live(m, generation)) return; // claim not bound yet: the periodic sync retries
      if (volumes.length > 0) {
        m.wanted.set(uid, volumes);
        await this.#reportNodeStatus(m);
        const attached = new Set(((this.#nodes?.get(m.name)?.status?.volumesAttached ?? []) as Array<{ name: string }>).map((v) => v.name));
        if (!volumes.every((v) => attached.has(v.unique))) return; // the node watch triggers the next try
      }
      if (!this.#live(m, generation)) return;
      this.#startContainer(m, pod, volumes[0]?.handle);
    }
    if (m.reported.pods.get(uid) !== "running") await this.#patchPodStatus(m, pod, "running");
  }

  #startContainer(m: Machine, pod: KubeObject, volume: string | undefined) {
    const owner = ownerOf(pod);
    const key = keyOf(pod);
    const ordinal = owner?.kind === "StatefulSet" ? Number(/-(\d+)$/.exec(pod.metadata.name)?.[1]) : undefined;
    const c: Container = {
      pod: key,
      uid: pod.metadata.uid!,
      node: m.name,
      workload: owner ? `${pod.metadata.namespace}/${owner.name}` : key,
      ...(ordinal === undefined || Number.isNaN(ordinal) ? {} : { ordinal }),
      ...(volume ? { volume } : {}),
      startedAt: Date.now(),
    };
    m.containers.set(c.uid, c);
    const replica = this.#replicas.get(key);
    if (replica && volume) replica.volume = volume;
    this.replicas();
    this.#note(m.name, `started ${key} (${c.uid.slice(0, 8)})${volume ? ` with volume ${volume}` : ""}`);
  }

  /** The CSI volumes of a pod's claims; null while a claim is not bound yet. */
  async #volumesOf(m: Machine, pod: KubeObject): Promise<VolumeRef[] | null> {
    const out: VolumeRef[] = [];
    for (const v of (pod.spec?.volumes ?? []) as Array<{ persistentVolumeClaim?: { claimName: string } }>) {
      const claim = v.persistentVolumeClaim?.claimName;
      if (!claim) continue;
      const claimKey = `${pod.metadata.namespace}/${claim}`;
      let ref = this.#volumeOfClaim.get(claimKey);
      if (!ref) {
        const pvc = await m.api.find(`/api/v1/namespaces/${pod.metadata.namespace}/persistentvolumeclaims/${claim}`);
        const pvName = pvc?.spec?.volumeName as string | undefined;
        if (!pvName || pvc?.status?.phase !== "Bound") return null;
        const pv = await m.api.get(`/api/v1/persistentvolumes/${pvName}`);
        const csi = pv.spec?.csi as { driver: string; volumeHandle: string } | undefined;
        if (!csi) continue;
        ref = { unique: `kubernetes.io/csi/${csi.driver}^${csi.volumeHandle}`, handle: csi.volumeHandle };
        this.#volumeOfClaim.set(claimKey, ref);
      }
      out.push(ref);
    }
    return out;
  }

  async #patchPodStatus(m: Machine, pod: KubeObject, how: "running" | "terminated") {
    const generation = m.generation;
    const now = rfc3339();
    const uid = pod.metadata.uid!;
    const started = rfc3339(m.containers.get(uid)?.startedAt ?? Date.now());
    const containers = ((pod.spec?.containers ?? []) as Array<{ name: string; image: string }>).map((c) => ({
      name: c.name,
      image: c.image,
      imageID: `${c.image}@sha256:0`,
      containerID: `kube-lab://${uid.slice(0, 8)}-${c.name}`,
      restartCount: 0,
      started: how === "running",
      ready: how === "running",
      state:
        how === "running"
          ? { running: { startedAt: started } }
          : { terminated: { exitCode: 137, reason: "Killed", startedAt: started, finishedAt: now } },
    }));
    const ready = how === "running" ? "True" : "False";
    const ip = `10.${200 + (hash(this.fleet) % 50)}.${m.index}.${m.ipCounter++ % 250}`;
    const status = {
      phase: how === "running" ? "Running" : "Failed",
      hostIP: `10.${100 + (hash(this.fleet) % 100)}.0.${m.index + 1}`,
      // podIPs merges by ip in a strategic merge patch: a pod started again (after a reboot) with
      // a new IP would get two, which the API server refuses. Replace the list, as the kubelet's
      // two-way patch does by deleting the old entry.
      ...(how === "running" ? { podIP: ip, podIPs: [{ ip }, { $patch: "replace" }], startTime: started } : {}),
      conditions: [
        { type: "PodReadyToStartContainers", status: ready, lastTransitionTime: now },
        { type: "Initialized", status: "True", lastTransitionTime: now },
        { type: "ContainersReady", status: ready, lastTransitionTime: now },
        { type: "Ready", status: ready, lastTransitionTime: now },
      ],
      containerStatuses: containers,
    };
    if (!this.#live(m, generation)) return;
    await m.api.patch(
      `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}/status`,
      { metadata: { uid }, status },
      { strategic: true },
    );
    if (m.generation === generation) m.reported.pods.set(uid, how);
  }

  // ------------------------------------------------------------------ CSI attacher and storage backend

  async #ensureCsiDriver() {
    try {
      await this.#admin.create("/apis/storage.k8s.io/v1/csidrivers", {
        apiVersion: "storage.k8s.io/v1",
        kind: "CSIDriver",
        metadata: { name: CSI_DRIVER },
        spec: { attachRequired: true, podInfoOnMount: false, volumeLifecycleModes: ["Persistent"] },
      });
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
  }

  #onAttachment(va: KubeObject) {
    if (va.spec?.attacher !== CSI_DRIVER || !this.#machines.has(va.spec?.nodeName)) return;
    this.#queueAttachment(va.metadata.name);
  }

  async #syncAttachment(name: string) {
    const va = this.#attachments?.get(name);
    if (!va || this.#stopped || va.spec?.attacher !== CSI_DRIVER) return;
    const node = va.spec.nodeName as string;
    if (!this.#machines.has(node)) return;
    const pvName = va.spec.source?.persistentVolumeName as string | undefined;
    const pv = pvName ? await this.#admin.find(`/api/v1/persistentvolumes/${pvName}`) : null;
    const handle = (pv?.spec?.csi?.volumeHandle as string | undefined) ?? pvName ?? name;
    const path = `/apis/storage.k8s.io/v1/volumeattachments/${name}`;
    const finalizers = va.metadata.finalizers ?? [];
    if (va.metadata.deletionTimestamp) {
      if (!finalizers.includes(ATTACHER_FINALIZER)) return;
      await sleep(this.#options.attachDelayMs ?? 50);
      this.#detachInBackend(handle, node);
      await this.#admin
        .patch(path, {
          metadata: { finalizers: finalizers.filter((f) => f !== ATTACHER_FINALIZER), resourceVersion: va.metadata.resourceVersion },
        })
        .catch((err: unknown) => {
          if (!isNotFound(err) && !isConflict(err)) throw err;
        });
      return;
    }
    if (va.status?.attached === true) return;
    if (!finalizers.includes(ATTACHER_FINALIZER)) {
      await this.#admin.patch(path, {
        metadata: { finalizers: [...finalizers, ATTACHER_FINALIZER], resourceVersion: va.metadata.resourceVersion },
      });
    }
    await sleep(this.#options.attachDelayMs ?? 50);
    this.#attachInBackend(handle, node);
    await this.#admin.patch(`${path}/status`, {
      status: { attached: true, attachmentMetadata: { devicePath: `/dev/kube-lab/${handle}` } },
    });
  }

  #attachInBackend(volume: string, node: string) {
    const list = this.#backend.get(volume) ?? [];
    if (list.some((a) => a.node === node)) return;
    list.push({ volume, node, attachedAt: Date.now() });
    this.#backend.set(volume, list);
    this.#note(
      node,
      `backend attached volume ${volume}${
        list.length > 1
          ? ` (also attached to ${list
              .filter((a) => a.node !== node)
              .map((a) => a.node)
              .join(", ")})`
          : ""
      }`,
    );
  }

  #detachInBackend(volume: string, node: string) {
    const list = (this.#backend.get(volume) ?? []).filter((a) => a.node !== node);
    if (list.length > 0) this.#backend.set(volume, list);
    else this.#backend.delete(volume);
    this.#note(node, `backend detached volume ${volume}`);
  }
}

function hash(s: string): number {
  let h = 0;
  for (const ch of s) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h;
}
