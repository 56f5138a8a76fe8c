import type { NatsConnection } from "@nats-io/transport-node";
import { AuditRecord, type Policy, type Provisioner } from "@fenceline/contracts";
import { connectNats, startNatsServer, type Logger, type NatsServer } from "@fenceline/bus";
import { defaultConditionRules } from "@fenceline/detectors";
import { createKubernetesCluster, createNodeEventRecorder, createNodeWatcher, loadKubeConfig } from "@fenceline/kubernetes";
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
import { Subjects } from "@fenceline/streams";
import { startControlPlane, type ControlPlane } from "@fenceline/control-plane";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export type KubeLabWorkloads = {
  /** StatefulSets, one replica per node, each replica with a ReadWriteOnce CSI volume. */
  statefulSets: Array<{ name: string; replicas: number }>;
  deployments?: Array<{ name: string; replicas: number }>;
  /** A DaemonSet that tolerates every taint (as kube-proxy, a CNI or Fenceline's agent). */
  daemonSet?: boolean;
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
  const machines = new KubeletFleet({ admin, nodes, fleet: name, ...(options.onEvent ? { onEvent: options.onEvent } : {}) });
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
    const expected =
      workloads.statefulSets.reduce((n, s) => n + s.replicas, 0) +
      (workloads.deployments ?? []).reduce((n, d) => n + d.replicas, 0) +
      (workloads.daemonSet ? nodes.length : 0);
    const until = Date.now() + (options.readyTimeoutMs ?? 120_000);
    for (;;) {
      const pods = await listPods(admin, name);
      if (pods.length >= expected && pods.every(isRunningAndReady)) break;
      if (Date.now() > until)
        throw new Error(
          `${name}: ${pods.filter(isRunningAndReady).length} of ${expected} pods running and ready after ${options.readyTimeoutMs ?? 120_000} ms`,
        );
      await sleep(200);
    }
    return { machines, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export type KubeLabFenceline = {
  machines: KubeletFleet;
  fleet: SimFleet;
  natsUrl: string;
  nc: NatsConnection;
  control: ControlPlane;
  /** Every audit record so far (as published). */
  audit: AuditRecord[];
  /** Invariant violations on the machines' ground truth so far (each once). */
  violations: Violation[];
  /** Each node's latest state (from the audit). */
  latest(node: string): string | undefined;
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
  /** How long a reset or rebooted machine stays down. */
  rebootMs: number;
  bootGate?: boolean;
  /** The node-condition rules' duration (as `fenceline up --condition-duration`). */
  conditionDurationMs: number;
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
 * the machines' ground truth every 25 ms. Returns once every node is healthy.
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
    const nc = await connectNats(natsUrl, { name: `${name}-control` });
    cleanups.push(() => nc.drain());
    const kubeConfig = loadKubeConfig({ kubeconfig: options.kubeconfig });
    const control = await startControlPlane({
      nc,
      policy,
      log,
      cluster: createKubernetesCluster({ kubeConfig, log: log.child({ component: "kubernetes" }) }),
      provisioner: options.provisioner,
      nodeEvents: createNodeEventRecorder({ kubeConfig, instance: name, log: log.child({ component: "node-events" }) }),
      conditions: {
        watcher: createNodeWatcher({ kubeConfig, labelSelector: `${FLEET_LABEL}=${name}`, log: log.child({ component: "node-watch" }) }),
        rules: defaultConditionRules(options.conditionDurationMs),
      },
    });
    cleanups.push(() => control.stop());

    const audit: AuditRecord[] = [];
    const latest = new Map<string, { seq: number; to: string }>();
    const sub = nc.subscribe(Subjects.auditAll, {
      callback: (err, msg) => {
        if (err) return;
        const parsed = AuditRecord.safeParse(msg.json());
        if (!parsed.success) return;
        const r = parsed.data;
        audit.push(r);
        const prev = latest.get(r.node);
        if (!prev || r.seq > prev.seq) latest.set(r.node, { seq: r.seq, to: r.to });
        options.onAudit?.(r);
      },
    });
    cleanups.push(async () => sub.unsubscribe());

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

    const state = (node: string) => latest.get(node)?.to;
    const until = Date.now() + 60_000;
    while (!nodes.every((n) => state(n) === "healthy")) {
      if (Date.now() > until)
        throw new Error(`${name}: the fleet did not become healthy within 60 s (${nodes.map((n) => `${n}=${state(n)}`).join(" ")})`);
      await sleep(100);
    }
    return {
      machines,
      fleet: sim.fleet,
      natsUrl,
      nc,
      control,
      audit,
      get violations() {
        return [...violations.values()];
      },
      latest: state,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
