import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { AuditRecord, type Policy, type Provisioner } from "@fenceline/contracts";
import { connectNats, startNatsServer, type Logger, type NatsServer } from "@fenceline/bus";
import { defaultConditionRules } from "@fenceline/detectors";
import {
  createKubernetesCluster,
  createNodeEventRecorder,
  createNodeWatcher,
  loadKubeConfig,
  type RetryOptions,
} from "@fenceline/kubernetes";
import {
  createDaemonSet,
  createDeployment,
  createNamespace,
  createStatefulSet,
  deleteNamespace,
  FLEET_LABEL,
  isRunningAndReady,
  KubeletFleet,
  listPods,
  type KubeClient,
  type MachineEvent,
} from "@fenceline/kube-lab";
import { checkInvariants, startSimFleetOnNats, type SimFleet, type Violation } from "@fenceline/sim";
import { Buckets, Streams } from "@fenceline/streams";
import { startControlPlane, type ControlPlane } from "@fenceline/control-plane";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export type KubeLabWorkloads = {
  /** StatefulSets, one replica per node, each replica with a ReadWriteOnce CSI volume. */
  statefulSets: Array<{ name: string; replicas: number }>;
  deployments?: Array<{ name: string; replicas: number }>;
  /** A DaemonSet that tolerates every taint (as kube-proxy, a CNI or Fenceline's agent). */
  daemonSet?: boolean;
  /** Each node also runs a static pod (its mirror pod in the namespace). */
  staticPods?: boolean;
  /** The caller's own workloads, created after the others; `pods` is how many pods they add (waited for with the others). */
  extra?: { pods: number; create(admin: KubeClient, namespace: string, fleet: string): Promise<void> };
};

/** Simulated machines (their kubelets on the real API server) with workloads, in their own namespace and zone. */
export async function startKubeLabMachines(options: {
  admin: KubeClient;
  /** The namespace, the fleet label and the zone. */
  name: string;
  nodes: string[];
  workloads: KubeLabWorkloads;
  onEvent?: (event: MachineEvent) => void;
  readyTimeoutMs?: number;
}): Promise<{ machines: KubeletFleet; stop(): Promise<void> }> {
  const { admin, name, nodes, workloads } = options;
  await createNamespace(admin, name);
  const machines = new KubeletFleet({
    admin,
    nodes,
    fleet: name,
    ...(workloads.staticPods ? { staticPodNamespace: name } : {}),
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
  });
  const stop = async () => {
    await machines.stop({ deleteNodes: true }).catch(() => {});
    await deleteNamespace(admin, name, name).catch(() => {});
  };
  try {
    await machines.start();
    for (const s of workloads.statefulSets)
      await createStatefulSet(admin, { namespace: name, name: s.name, replicas: s.replicas, fleet: name });
    for (const d of workloads.deployments ?? [])
      await createDeployment(admin, { namespace: name, name: d.name, replicas: d.replicas, fleet: name });
    if (workloads.daemonSet) await createDaemonSet(admin, { namespace: name, name: "node-agent", fleet: name });
    await workloads.extra?.create(admin, name, name);
    const expected =
      workloads.statefulSets.reduce((n, s) => n + s.replicas, 0) +
      (workloads.deployments ?? []).reduce((n, d) => n + d.replicas, 0) +
      (workloads.daemonSet ? nodes.length : 0) +
      (workloads.staticPods ? nodes.length : 0) +
      (workloads.extra?.pods ?? 0);
    const timeoutMs = options.readyTimeoutMs ?? 120_000;
    const until = Date.now() + timeoutMs;
    for (;;) {
      const pods = await listPods(admin, name);
      if (pods.length >= expected && pods.every(isRunningAndReady)) break;
      if (Date.now() > until)
        throw new Error(
          `${name}: ${pods.filter(isRunningAndReady).length} of ${expected} pods running and ready after ${timeoutMs} ms\nmachines:\n${lastLines(machines.formatEvents(), 30)}`,
        );
      await sleep(200);
    }
    return { machines, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

const lastLines = (text: string, n: number) => text.split("\n").slice(-n).join("\n");

export type KubeLabFenceline = {
  machines: KubeletFleet;
  fleet: SimFleet;
  natsUrl: string;
  /** The first control plane's connection. */
  nc: NatsConnection;
  controls: ControlPlane[];
  /** Every audit record so far, as FL_AUDIT stored it (once, whichever engine published it). */
  audit: AuditRecord[];
  /** Invariant violations on the machines' ground truth so far (each once). */
  violations: Violation[];
  /** Each node's state as the engine last saved it (KV FL_NODES). */
  latest(node: string): string | undefined;
  /** The audit as `node from→to (reason)` lines: one node's in order, or everyone's. */
  timeline(node?: string): string[];
  /** The nodes' states, the latest audit lines and machine events: what a timed-out wait should print. */
  explain(): string;
  stop(): Promise<void>;
};

export type KubeLabFencelineOptions = {
  admin: KubeClient;
  /** The credentials Fenceline acts with (as `fenceline up --kubeconfig`). */
  kubeconfig: string;
  name: string;
  nodes: string[];
  policy: Policy;
  workloads: KubeLabWorkloads;
  provisioner: Provisioner;
  log: Logger;
  /** An existing nats-server; by default one is started (own port and store). */
  natsUrl?: string;
  /** Engine and actuator sets on the same nats-server, each with its own connection (default 1). */
  controlPlanes?: number;
  /** The Kubernetes calls' retries (the cluster adapter's; default its own). */
  kubernetesRetry?: RetryOptions;
  /**
   * The node-condition detector, as `fenceline up` runs it: Ready=False/Unknown held for
   * `durationMs` (`--condition-duration`) is a signal; `watchRetryMs` is how soon a broken watch
   * is started again (default the watcher's). Without it, no node-condition detector.
   */
  conditions?: { durationMs: number; watchRetryMs?: number };
  /** How long a reset or rebooted machine stays down. */
  rebootMs: number;
  bootGate?: boolean;
  onMachineEvent?: (event: MachineEvent | { at: number; node: string; what: string }) => void;
  onAudit?: (record: AuditRecord) => void;
  onViolation?: (violation: Violation) => void;
  /** Runs after every step of the fleet (every 25 ms). */
  onStep?: (now: number, fleet: SimFleet) => void;
};

/**
 * Fenceline as `fenceline up` runs it, on the real control plane of kube-lab: simulated machines
 * whose kubelets talk to the real API server, the workloads, a nats-server, the control plane
 * (engine, heartbeat and node-condition detectors, fleet guard, actuators acting through
 * `kubeconfig`, Node Events) and the real agent on every machine. The invariants are checked on
 * the machines' ground truth every 25 ms. Returns once every node is healthy, every agent holds
 * the whole fleet's membership view and the engine has heard each agent's fencing contract naming
 * that view (before that, a silent node cannot be assumed fenced by time, and the fleet guard
 * also counts the majority in the older, smaller views).
 */
export async function startKubeLabFenceline(options: KubeLabFencelineOptions): Promise<KubeLabFenceline> {
  const { admin, name, nodes, policy, log } = options;
  const cleanups: Array<() => Promise<unknown>> = [];
  const stopAll = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    cleanups.length = 0;
  };
  try {
    const { machines, stop: stopMachines } = await startKubeLabMachines({
      admin,
      name,
      nodes,
      workloads: options.workloads,
      ...(options.onMachineEvent ? { onEvent: options.onMachineEvent } : {}),
    });
    cleanups.push(stopMachines);
    let server: NatsServer | undefined;
    let natsUrl = options.natsUrl;
    if (!natsUrl) {
      server = await startNatsServer({ log });
      natsUrl = server.url;
      cleanups.push(() => server!.stop());
    }
    const controls: ControlPlane[] = [];
    const connections: NatsConnection[] = [];
    for (let i = 0; i < (options.controlPlanes ?? 1); i++) {
      const nc = await connectNats(natsUrl, { name: `${name}-control-${i}` });
      connections.push(nc);
      cleanups.push(() => nc.drain());
      const controlLog = log.child({ control: i });
      const kubeConfig = loadKubeConfig({ kubeconfig: options.kubeconfig });
      const control = await startControlPlane({
        nc,
        policy,
        log: controlLog,
        cluster: createKubernetesCluster({
          kubeConfig,
          log: controlLog.child({ component: "kubernetes" }),
          ...(options.kubernetesRetry ? { retry: options.kubernetesRetry } : {}),
        }),
        provisioner: options.provisioner,
        nodeEvents: createNodeEventRecorder({
          kubeConfig,
          instance: `${name}-control-${i}`,
          log: controlLog.child({ component: "node-events" }),
        }),
        ...(options.conditions
          ? {
              conditions: {
                watcher: createNodeWatcher({
                  kubeConfig,
                  labelSelector: `${FLEET_LABEL}=${name}`,
                  log: controlLog.child({ component: "node-watch" }),
                  ...(options.conditions.watchRetryMs !== undefined ? { retryMs: options.conditions.watchRetryMs } : {}),
                }),
                rules: defaultConditionRules(options.conditions.durationMs),
              },
            }
          : {}),
      });
      controls.push(control);
      cleanups.push(() => control.stop());
    }
    const nc = connections[0]!;

    const audit = await readStoredAudit(nc, options.onAudit);
    cleanups.push(audit.stop);
    const states = await watchNodeStates(nc);
    cleanups.push(states.stop);

    const violations = new Map<string, Violation>();
    const sim = await startSimFleetOnNats({
      url: natsUrl,
      connectionName: `${name}-agents`,
      nodes,
      cluster: machines,
      policy,
      rebootMs: options.rebootMs,
      ...(options.bootGate ? { bootGate: true } : {}),
      log,
      ...(options.onMachineEvent ? { onEvent: options.onMachineEvent } : {}),
      onStep: (now, fleet) => {
        for (const v of checkInvariants(machines, now).violations) {
          const key = `${v.invariant}:${v.detail}`;
          if (violations.has(key)) continue;
          violations.set(key, v);
          options.onViolation?.(v);
        }
        options.onStep?.(now, fleet);
      },
    });
    cleanups.push(() => sim.stop());
    const { fleet } = sim;

    const latest = (node: string) => states.get(node)?.path;
    const timeline = (node?: string) => {
      const records = node ? audit.records.filter((r) => r.node === node).sort((a, b) => a.seq - b.seq) : audit.records;
      return records.map((r) => `${r.node} ${r.from}→${r.to}${r.reason ? ` (${r.reason})` : ""}`);
    };
    const explain = () =>
      `states: ${nodes.map((n) => `${n}=${latest(n)}`).join(" ")}\naudit:\n${timeline().slice(-25).join("\n")}\nmachines:\n${lastLines(machines.formatEvents(), 25)}`;

    // The engine must have heard the contract that reports the whole fleet's view: the fleet
    // guard checks a majority in every view from the one in the node's last contract on, and an
    // agent's contract naming an older view (of fewer members) would make it refuse for that one.
    const ready = (n: string) => {
      const view = fleet.status(n).agent?.membership;
      return latest(n) === "healthy" && view?.members.length === nodes.length && states.get(n)?.membershipVersion === view.version;
    };
    const until = Date.now() + 60_000;
    while (!nodes.every(ready)) {
      if (Date.now() > until)
        throw new Error(
          `${name}: the fleet was not healthy, with every agent holding the whole fleet's view and the engine having heard its contract naming it, within 60 s\n${explain()}`,
        );
      await sleep(100);
    }
    return {
      machines,
      fleet,
      natsUrl,
      nc,
      controls,
      audit: audit.records,
      get violations() {
        return [...violations.values()];
      },
      latest,
      timeline,
      explain,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** The audit as FL_AUDIT stores it (it deduplicates what several engines publish), from its start. */
async function readStoredAudit(nc: NatsConnection, onAudit?: (record: AuditRecord) => void) {
  const records: AuditRecord[] = [];
  const messages = await (await jetstream(nc).consumers.get(Streams.audit)).consume();
  const done = (async () => {
    for await (const msg of messages) {
      const parsed = AuditRecord.safeParse(msg.json());
      if (!parsed.success) continue;
      records.push(parsed.data);
      onAudit?.(parsed.data);
    }
  })();
  return {
    records,
    async stop() {
      await messages.close();
      await done.catch(() => {});
    },
  };
}

/**
 * Each node's state as the engine saved it (KV FL_NODES), and the membership version in the
 * fencing contract of the node's agent it last heard (null: none heard yet).
 */
async function watchNodeStates(nc: NatsConnection) {
  const states = new Map<string, { path: string; membershipVersion: number | null }>();
  const watch = await (await new Kvm(nc).open(Buckets.nodes)).watch();
  const done = (async () => {
    for await (const e of watch) {
      if (e.operation !== "PUT") continue;
      const snapshot = e.json<{ path: string; context: { contract?: { membershipVersion?: number } | null } }>();
      const contract = snapshot.context.contract;
      states.set(e.key, { path: snapshot.path, membershipVersion: contract ? (contract.membershipVersion ?? 0) : null });
    }
  })();
  return {
    get: (node: string) => states.get(node),
    async stop() {
      watch.stop();
      await done.catch(() => {});
    },
  };
}
