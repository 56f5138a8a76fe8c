import { Kvm } from "@nats-io/kv";
import { inject } from "vitest";
import { DEMO_POLICY, Policy, type PolicyInput, type Provisioner } from "@fenceline/contracts";
import { createLogger } from "@fenceline/bus";
import { startKubeLabFenceline, type KubeLabWorkloads } from "@fenceline/bench";
import {
  adminClient,
  createNamespace,
  createStatefulSet,
  deleteNamespace,
  isRunningAndReady,
  KubeletFleet,
  listPods,
  type KubeClient,
  type KubeObject,
} from "@fenceline/kube-lab";
import { Buckets } from "@fenceline/streams";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** DEMO_POLICY (seconds, not minutes) with overrides. */
export function testPolicy(overrides: Partial<PolicyInput> = {}): Policy {
  return Policy.parse({ ...DEMO_POLICY, ...overrides, version: "k8s-test" });
}

/** The shared control plane's admin client (test/kubernetes/global-setup.ts). */
export function kubeAdmin(): KubeClient {
  return adminClient(inject("kubeTest").kube);
}

export async function waitUntil(
  what: string,
  pred: () => boolean | Promise<boolean>,
  timeoutMs: number,
  explain: () => string = () => "",
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${explain()}`);
    await sleep(100);
  }
}

/**
 * A namespace of its own (`name`, also the fleet) with kube-lab's kubelets for `nodes` and a
 * StatefulSet "db" of `replicas`, returned once every replica runs and is ready. `beforeWorkloads`
 * runs once the kubelets are up, before the StatefulSet (an administrator's labels and taints).
 */
export async function startDbFleet(options: {
  admin: KubeClient;
  name: string;
  nodes: string[];
  replicas: number;
  beforeWorkloads?: () => Promise<unknown>;
}): Promise<{ machines: KubeletFleet; stop(): Promise<void> }> {
  const { admin, name, replicas } = options;
  await createNamespace(admin, name);
  const machines = new KubeletFleet({ admin, nodes: options.nodes, fleet: name });
  const stop = async () => {
    await machines.stop({ deleteNodes: true });
    await deleteNamespace(admin, name, name);
  };
  try {
    await machines.start();
    await options.beforeWorkloads?.();
    await createStatefulSet(admin, { namespace: name, name: "db", replicas, fleet: name });
    await waitUntil(
      "db running",
      async () => {
        const pods = await listPods(admin, name);
        return pods.length === replicas && pods.every(isRunningAndReady);
      },
      90_000,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { machines, stop };
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
  /** The test's own workloads, created after the standard ones before the fleet starts, and how many pods they add. */
  extraWorkloads?: KubeLabWorkloads["extra"];
};

const quickProvisioner: Provisioner = {
  async run(step, node) {
    await sleep(50);
    return { ok: true, output: `${step} ${node}: ok` };
  },
};

/**
 * Fenceline on the real control plane (the bench's `startKubeLabFenceline`): simulated machines
 * whose kubelets register with the shared API server (own nodes, own zone, own namespace), a
 * StatefulSet "db" with ReadWriteOnce CSI volumes and a Deployment "web" bound by the real
 * scheduler; a nats-server, the Fenceline control plane (engine, detectors, fleet guard,
 * actuators) acting with the engine ServiceAccount's token, and the real agent on every machine.
 * The invariants are checked every 25 ms on the machines' ground truth.
 */
export async function startRealK8s(options: RealK8sOptions) {
  const { name } = options;
  const log = createLogger(`k8s-${name}`, { level: process.env.FENCELINE_LOG_LEVEL ?? "silent" });
  const policy = options.policy ?? testPolicy();
  const admin = kubeAdmin();
  const names = Array.from({ length: options.nodes ?? 5 }, (_, i) => `${name}-${i + 1}`);
  const namespace = name;
  const fl = await startKubeLabFenceline({
    admin,
    kubeconfig: options.kubeconfig ?? inject("kubeTest").engineKubeconfig,
    name,
    nodes: names,
    policy,
    workloads: {
      statefulSets: [{ name: "db", replicas: options.statefulReplicas ?? 2 }],
      deployments: [{ name: "web", replicas: options.deploymentReplicas ?? 2 }],
      ...(options.daemonSet ? { daemonSet: true } : {}),
      ...(options.staticPods ? { staticPods: true } : {}),
      ...(options.extraWorkloads ? { extra: options.extraWorkloads } : {}),
    },
    provisioner: quickProvisioner,
    log,
    controlPlanes: options.controlPlanes ?? 1,
    kubernetesRetry: { baseMs: 50, maxMs: 500 },
    ...(options.conditions ? { conditions: { durationMs: options.conditionDurationMs ?? 0, watchRetryMs: 200 } } : {}),
    rebootMs: options.rebootMs ?? 500,
  });
  const { machines, nc, explain } = fl;
  const waitFor = (what: string, pred: () => boolean | Promise<boolean>, timeoutMs = 45_000) => waitUntil(what, pred, timeoutMs, explain);
  const pod = async (podName: string) => (await admin.find(`/api/v1/namespaces/${namespace}/pods/${podName}`)) as KubeObject | null;
  return {
    name,
    names,
    namespace,
    policy,
    admin,
    machines,
    fleet: fl.fleet,
    audit: fl.audit,
    get violations() {
      return fl.violations;
    },
    latest: fl.latest,
    explain,
    waitFor,
    pod,
    /** The node a pod is bound to (API view). */
    nodeOf: async (podName: string) => (await pod(podName))?.spec?.nodeName as string,
    /** Where a StatefulSet replica really runs (ground truth). */
    runningOn: (replica: string) => machines.replicas().find((r) => r.replica === `${namespace}/${replica}`)?.runningOn ?? [],
    /** One node's audit, in order, as `node from→to (reason)` lines. */
    timeline: (node: string) => fl.timeline(node),
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
    stop: fl.stop,
  };
}
export type RealK8s = Awaited<ReturnType<typeof startRealK8s>>;
