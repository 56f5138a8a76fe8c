import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { jetstream } from "@nats-io/jetstream";
import { AuditRecord, DEMO_POLICY, Policy, systemClock, type PolicyInput, type Provisioner } from "@fenceline/contracts";
import { connectNats, createLogger, startNatsServer, type NatsServer } from "@fenceline/bus";
import { startControlPlane, startSimFleetOnNats, type ControlPlane } from "@fenceline/cli";
import { defaultConditionRules } from "@fenceline/detectors";
import { createKubernetesCluster, createNodeWatcher, loadKubeConfig } from "@fenceline/kubernetes";
import { checkInvariants, InMemoryCluster, startKubernetesApiServer, type KubernetesApiServer, type Violation } from "@fenceline/sim";
import { Buckets, Streams } from "@fenceline/streams";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** DEMO_POLICY (seconds, not minutes) with overrides. */
export function testPolicy(overrides: Partial<PolicyInput> = {}): Policy {
  return Policy.parse({ ...DEMO_POLICY, ...overrides, version: "k8s-test" });
}

export type SimK8sOptions = {
  nodes?: number;
  policy?: Policy;
  serverVersion?: string;
  /** Engine + actuator sets on the same NATS server and the same API server (default 1). */
  controlPlanes?: number;
  /** Run the node-condition detector too (Ready Unknown after `graceMs`). */
  conditions?: boolean;
  graceMs?: number;
  statefulReplicas?: number;
};

const quickProvisioner: Provisioner = {
  async run(step, node) {
    await sleep(50);
    return { ok: true, output: `${step} ${node}: ok` };
  },
};

/**
 * The production path on the simulator: a real nats-server, the control plane (engine,
 * detectors, fleet guard, actuators) whose cluster actuator is the real Kubernetes adapter,
 * talking over HTTP to the simulated API server that serves the stepped cluster model; a
 * simulated fleet of machines running the real agent. Invariants are checked on every step.
 */
export async function startSimK8s(options: SimK8sOptions = {}) {
  const log = createLogger("k8s-e2e", { level: process.env.FENCELINE_LOG_LEVEL ?? "silent" });
  const policy = options.policy ?? testPolicy();
  const names = Array.from({ length: options.nodes ?? 5 }, (_, i) => `node-${i + 1}`);
  const server: NatsServer = await startNatsServer({ log });
  const cluster = new InMemoryCluster({ clock: systemClock, nodes: names, ...(options.serverVersion ? { serverVersion: options.serverVersion } : {}) });
  cluster.addStatefulSet("db", options.statefulReplicas ?? 2);
  cluster.addDeployment("web", 2);
  const api: KubernetesApiServer = await startKubernetesApiServer({ cluster, nodeMonitorGracePeriodMs: options.graceMs ?? 40_000 });
  const dir = mkdtempSync(join(tmpdir(), "fl-k8s-e2e-"));
  const kubeconfig = api.writeKubeconfig(dir);

  const connections: NatsConnection[] = [];
  const controls: ControlPlane[] = [];
  for (let i = 0; i < (options.controlPlanes ?? 1); i++) {
    const nc = await connectNats(server.url, { name: `k8s-e2e-control-${i}` });
    connections.push(nc);
    const kubeConfig = loadKubeConfig({ kubeconfig });
    controls.push(
      await startControlPlane({
        nc,
        policy,
        log: log.child({ control: i }),
        cluster: createKubernetesCluster({ kubeConfig, log: log.child({ control: i, component: "kubernetes" }), retry: { baseMs: 20, maxMs: 200 } }),
        provisioner: quickProvisioner,
        ...(options.conditions ? { conditions: { watcher: createNodeWatcher({ kubeConfig, retryMs: 100 }), rules: defaultConditionRules(0) } } : {}),
      }),
    );
  }
  const nc = connections[0]!;

  // The audit as stored (FL_AUDIT deduplicates): with two engines, the one that loses a
  // snapshot race also publishes, and a core-NATS subscriber would see its record too.
  const audit: AuditRecord[] = [];
  const auditConsumer = await jetstream(nc).consumers.get(Streams.audit);
  const auditMessages = await auditConsumer.consume();
  const auditDone = (async () => {
    for await (const msg of auditMessages) {
      const parsed = AuditRecord.safeParse(msg.json());
      if (parsed.success) audit.push(parsed.data);
    }
  })();

  const violations: Violation[] = [];
  const sim = await startSimFleetOnNats({
    url: server.url,
    connectionName: "k8s-e2e-agents",
    nodes: names,
    cluster,
    policy,
    rebootMs: 500,
    log,
    onStep: (now) => violations.push(...checkInvariants(cluster, now).violations),
  });
  const { fleet } = sim;

  // Node states as the engine saved them (FL_NODES, compare-and-set): with two engines the
  // stored audit can hold a record of the instance that then lost the snapshot race.
  const paths = new Map<string, string>();
  /** Whether the engine may assume each node fenced by time (its agent's contract, heard). */
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
  const latest = (node: string) => paths.get(node);
  const waitFor = async (what: string, pred: () => boolean, timeoutMs = 30_000) => {
    const until = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > until) {
        const states = names.map((n) => `${n}=${latest(n)}`).join(" ");
        throw new Error(`timed out waiting for ${what}; states: ${states}\n${reasons().slice(-30).join("\n")}`);
      }
      await sleep(25);
    }
  };
  const reasons = (node?: string) => audit.filter((r) => !node || r.node === node).sort((a, b) => a.seq - b.seq).map((r) => `${r.node} ${r.from}→${r.to}${r.reason ? ` (${r.reason})` : ""}`);

  // Every agent holds the whole fleet's view and the engine has its contract: a silent node can
  // then be assumed fenced by time (before, only a new boot id, a power-off or an operator).
  await waitFor(
    "a healthy fleet with its workloads running, every agent's contract heard with the whole fleet's view",
    () =>
      names.every((n) => latest(n) === "healthy" && timeBased.get(n) === true && fleet.status(n).agent?.membership?.members.length === names.length) &&
      cluster.replicas().every((r) => r.runningOn.length === 1),
  );

  return {
    names,
    policy,
    server,
    nc,
    cluster,
    api,
    kubeconfig,
    fleet,
    audit,
    violations,
    latest,
    waitFor,
    reasons,
    /** The node running StatefulSet replica `replica`. */
    nodeOf: (replica: string) => cluster.replicas().find((r) => r.replica === replica)!.runningOn[0]!,
    /** The audit records of a node, in order, as text. */
    timeline: (node: string) => reasons(node),
    /** Every revision of the fleet budget (KV FL_FLEET) from now on. */
    async watchBudget(onSlots: (slots: string[]) => void) {
      const kv = await new Kvm(nc).open(Buckets.fleet);
      const w = await kv.watch({ key: "budget" });
      void (async () => {
        for await (const e of w) if (e.operation === "PUT") onSlots(Object.keys(e.json<{ slots: Record<string, unknown> }>().slots).sort());
      })();
      return () => w.stop();
    },
    async stop() {
      await sim.stop();
      await auditMessages.close();
      nodesWatch.stop();
      await nodesDone.catch(() => {});
      await auditDone.catch(() => {});
      for (const c of controls) await c.stop();
      for (const c of connections) await c.drain().catch(() => {});
      await api.stop();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
export type SimK8s = Awaited<ReturnType<typeof startSimK8s>>;
