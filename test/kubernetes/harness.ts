import { Kvm } from "@nats-io/kv";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { inject } from "vitest";
import { AuditRecord, DEMO_POLICY, Policy, type PolicyInput, type Provisioner } from "@fenceline/contracts";
import { connectNats, createLogger, startNatsServer, type NatsServer } from "@fenceline/bus";
import { startControlPlane, startSimFleetOnNats, type ControlPlane } from "@fenceline/cli";
import { defaultConditionRules } from "@fenceline/detectors";
import { createKubernetesCluster, createNodeEventRecorder, createNodeWatcher, loadKubeConfig } from "@fenceline/kubernetes";
import {
  adminClient,
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
  type KubeObject,
} from "@fenceline/kube-lab";
import { checkInvariants, type Violation } from "@fenceline/sim";
import { Buckets, Streams } from "@fenceline/streams";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** DEMO_POLICY (seconds, not minutes) with overrides. */
export function testPolicy(overrides: Partial<PolicyInput> = {}): Policy {
  return Policy.parse({ ...DEMO_POLICY, ...overrides, version: "k8s-test" });
}

/** The shared control plane's admin client (test/kubernetes/global-setup.ts). */
export function kubeAdmin(): KubeClient {
  return adminClient(inject("kubeTest").kube);
}

export async function waitUntil(what: string, pred: () => boolean | Promise<boolean>, timeoutMs: number, explain: () => string = () => ""): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${explain()}`);
    await sleep(100);
  }
}

export type RealK8sOptions = {
  /** Unique per test: the namespace, the fleet (and zone) and the node-name prefix. */
  name: string;
  nodes?: number;
  policy?: Policy;
  /** Engine + actuator sets on the same NATS server (default 1). */
  controlPlanes?: number;
  /** Run the node-condition detector too (rules Ready=Unknown/False held for `conditionDurationMs`). */
  conditions?: boolean;
  conditionDurationMs?: number;
  statefulReplicas?: number;
  deploymentReplicas?: number;
  /** A DaemonSet that tolerates every taint (as kube-proxy or Fenceline's own agent). */
  daemonSet?: boolean;
  /** Each node also runs a static pod (its mirror pod in the test's namespace). */
  staticPods?: boolean;
  /** The Kubernetes credentials Fenceline uses (default: the engine ServiceAccount of deploy/rbac.yaml). */
  kubeconfig?: string;
  /** How long a reset or rebooted machine stays down (default 500 ms). */
  rebootMs?: number;
  /** Extra workloads before the fleet starts (created after the standard ones). */
  workloads?: (admin: KubeClient, namespace: string, fleet: string) => Promise<void>;
  /** How many pods `workloads` adds (waited for with the others). */
  extraPods?: number;
};

const quickProvisioner: Provisioner = {
  async run(step, node) {
    await sleep(50);
    return { ok: true, output: `${step} ${node}: ok` };
  },
};

/**
 * Fenceline on the real control plane: simulated machines whose kubelets register with the
 * shared API server (own nodes, own zone, own namespace), a StatefulSet with ReadWriteOnce CSI
 * volumes and a Deployment bound by the real scheduler; a nats-server, the Fenceline control
 * plane (engine, detectors, fleet guard, actuators) acting with the engine ServiceAccount's
 * token, and the real agent on every machine. The invariants are checked every 25 ms on the
 * machines' ground truth.
 */
export async function startRealK8s(options: RealK8sOptions) {
  const { name } = options;
  const log = createLogger(`k8s-${name}`, { level: process.env.FENCELINE_LOG_LEVEL ?? "silent" });
  const policy = options.policy ?? testPolicy();
  const admin = kubeAdmin();
  const names = Array.from({ length: options.nodes ?? 5 }, (_, i) => `${name}-${i + 1}`);
  const namespace = name;
  const cleanups: Array<() => Promise<unknown>> = [];
  const stopAll = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    cleanups.length = 0;
  };

  try {
    await createNamespace(admin, namespace);
    cleanups.push(() => deleteNamespace(admin, namespace, name));
    const machines = new KubeletFleet({ admin, nodes: names, fleet: name, ...(options.staticPods ? { staticPodNamespace: namespace } : {}) });
    await machines.start();
    cleanups.push(() => machines.stop({ deleteNodes: true }));
    await createStatefulSet(admin, { namespace, name: "db", replicas: options.statefulReplicas ?? 2, fleet: name });
    await createDeployment(admin, { namespace, name: "web", replicas: options.deploymentReplicas ?? 2, fleet: name });
    if (options.daemonSet) await createDaemonSet(admin, { namespace, name: "node-agent", fleet: name });
    await options.workloads?.(admin, namespace, name);
    const expected =
      (options.statefulReplicas ?? 2) + (options.deploymentReplicas ?? 2) + (options.daemonSet ? names.length : 0) + (options.staticPods ? names.length : 0) + (options.extraPods ?? 0);
    await waitUntil(
      `the ${expected} pods of ${namespace} running and ready`,
      async () => {
        const pods = await listPods(admin, namespace);
        return pods.length >= expected && pods.every(isRunningAndReady);
      },
      90_000,
      () => machines.formatEvents().split("\n").slice(-30).join("\n"),
    );

    const server: NatsServer = await startNatsServer({ log });
    cleanups.push(() => server.stop());
    const kubeconfig = options.kubeconfig ?? inject("kubeTest").engineKubeconfig;
    const connections: NatsConnection[] = [];
    const controls: ControlPlane[] = [];
    for (let i = 0; i < (options.controlPlanes ?? 1); i++) {
      const nc = await connectNats(server.url, { name: `k8s-${name}-control-${i}` });
      connections.push(nc);
      cleanups.push(() => nc.drain());
      const kubeConfig = loadKubeConfig({ kubeconfig });
      const control = await startControlPlane({
        nc,
        policy,
        log: log.child({ control: i }),
        cluster: createKubernetesCluster({ kubeConfig, log: log.child({ control: i, component: "kubernetes" }), retry: { baseMs: 50, maxMs: 500 } }),
        provisioner: quickProvisioner,
        nodeEvents: createNodeEventRecorder({ kubeConfig, instance: `${name}-control-${i}` }),
        ...(options.conditions
          ? {
              conditions: {
                watcher: createNodeWatcher({ kubeConfig, labelSelector: `${FLEET_LABEL}=${name}`, retryMs: 200 }),
                rules: defaultConditionRules(options.conditionDurationMs ?? 0),
              },
            }
          : {}),
      });
      controls.push(control);
      cleanups.push(() => control.stop());
    }
    const nc = connections[0]!;

    // The audit as stored (FL_AUDIT deduplicates what two engines publish).
    const audit: AuditRecord[] = [];
    const auditMessages = await (await jetstream(nc).consumers.get(Streams.audit)).consume();
    const auditDone = (async () => {
      for await (const msg of auditMessages) {
        const parsed = AuditRecord.safeParse(msg.json());
        if (parsed.success) audit.push(parsed.data);
      }
    })();
    cleanups.push(async () => {
      await auditMessages.close();
      await auditDone.catch(() => {});
    });

    const violations: Violation[] = [];
    const sim = await startSimFleetOnNats({
      url: server.url,
      connectionName: `k8s-${name}-agents`,
      nodes: names,
      cluster: machines,
      policy,
      rebootMs: options.rebootMs ?? 500,
      log,
      onStep: (now) => violations.push(...checkInvariants(machines, now).violations),
    });
    cleanups.push(() => sim.stop());
    const { fleet } = sim;

    // Node states as the engine saved them (FL_NODES), and whether the engine may assume each
    // node fenced by time (its agent's contract, heard).
    const paths = new Map<string, string>();
    const timeBased = new Map<string, boolean>();
    const nodesWatch = await (await new Kvm(nc).open(Buckets.nodes)).watch();
    const nodesDone = (async () => {
      for await (const e of nodesWatch) {
        if (e.operation !== "PUT") continue;
        const snapshot = e.json<{ path: string; context: { guarantee?: { timeBased: boolean } } }>();
        paths.set(e.key, snapshot.path);
        timeBased.set(e.key, snapshot.context.guarantee?.timeBased === true);
      }
    })();
    cleanups.push(async () => {
      nodesWatch.stop();
      await nodesDone.catch(() => {});
    });
    const latest = (node: string) => paths.get(node);
    const reasons = (node?: string) =>
      audit
        .filter((r) => !node || r.node === node)
        .sort((a, b) => a.seq - b.seq)
        .map((r) => `${r.node} ${r.from}→${r.to}${r.reason ? ` (${r.reason})` : ""}`);
    const explain = () =>
      `states: ${names.map((n) => `${n}=${latest(n)}`).join(" ")}\naudit:\n${reasons().slice(-25).join("\n")}\nmachines:\n${machines.formatEvents().split("\n").slice(-25).join("\n")}`;
    const waitFor = (what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 45_000) => waitUntil(what, pred, timeoutMs, explain);

    // Every agent holds the whole fleet's view and the engine has its contract: a silent node can
    // then be assumed fenced by time (before, only a new boot id, a power-off or an operator).
    await waitFor(
      "a healthy fleet, every agent's contract heard with the whole fleet's view",
      () => names.every((n) => latest(n) === "healthy" && timeBased.get(n) === true && fleet.status(n).agent?.membership?.members.length === names.length),
      30_000,
    );

    const pod = async (podName: string) => (await admin.find(`/api/v1/namespaces/${namespace}/pods/${podName}`)) as KubeObject | null;
    return {
      name,
      names,
      namespace,
      policy,
      admin,
      machines,
      fleet,
      server,
      nc,
      audit,
      violations,
      latest,
      reasons,
      explain,
      waitFor,
      pod,
      /** The node a pod is bound to (API view). */
      nodeOf: async (podName: string) => (await pod(podName))?.spec?.nodeName as string,
      /** Where a StatefulSet replica really runs (ground truth). */
      runningOn: (replica: string) => machines.replicas().find((r) => r.replica === `${namespace}/${replica}`)?.runningOn ?? [],
      timeline: (node: string) => reasons(node),
      /** The Node object (taints, conditions). */
      node: (nodeName: string) => admin.get(`/api/v1/nodes/${nodeName}`),
      /** Every revision of the fleet budget (KV FL_FLEET) from now on. */
      async watchBudget(onSlots: (slots: string[]) => void) {
        const kv = await new Kvm(nc).open(Buckets.fleet);
        const w = await kv.watch({ key: "budget" });
        void (async () => {
          for await (const e of w) if (e.operation === "PUT") onSlots(Object.keys(e.json<{ slots: Record<string, unknown> }>().slots).sort());
        })();
        return () => w.stop();
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
export type RealK8s = Awaited<ReturnType<typeof startRealK8s>>;
