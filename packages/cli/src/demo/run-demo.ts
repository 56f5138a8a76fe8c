import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditRecord, DEMO_POLICY, Policy, systemClock, type Provisioner } from "@fenceline/contracts";
import { createFenceDevices, createSecretReader, FenceDevicesConfig, type FenceDevice } from "@fenceline/actuators";
import { connectNats, createLogger, startNatsServer, type Logger, type NatsServer } from "@fenceline/bus";
import { defaultConditionRules } from "@fenceline/detectors";
import { createKubernetesCluster, createNodeEventRecorder, createNodeWatcher, loadKubeConfig } from "@fenceline/kubernetes";
import { FLEET_LABEL, startKubeControlPlane } from "@fenceline/kube-lab";
import {
  checkInvariants,
  InMemoryCluster,
  ipmiSimAvailable,
  startIpmiSimBmc,
  startKubernetesApiServer,
  startSimFleetOnNats,
  type ClusterTruth,
  type IpmiSimBmc,
  type Machines,
  type SimFleet,
  type Violation,
} from "@fenceline/sim";
import { Subjects } from "@fenceline/streams";
import { startControlPlane, type ControlPlane } from "@fenceline/control-plane";
import { faultTimings, type FencedBy } from "./fault-timings.js";
import { checkScenario, minorityGroupSize, SCENARIOS, type FaultPlan, type Scenario } from "./scenarios.js";
import { startKubeLabMachines } from "@fenceline/bench";

type FaultReport = {
  node: string;
  kind: string;
  injectedAt: number;
  detectedAfterMs: number | null;
  fencedAfterMs: number | null;
  /** How fencing was confirmed: a new boot id, the watchdog, the safe time or a power-off read back; null when it was not. */
  fencedBy: FencedBy | null;
  workloadsRecoveredAfterMs: number | null;
  rejoinedAfterMs: number | null;
  finalState: string;
  reprovisioned: boolean;
  selfFenced: boolean;
  /** Stateful replicas that ran on the node when the fault hit. */
  statefulReplicas: string[];
};

export type DemoSummary = {
  scenario: string;
  nodes: number;
  eventsProcessed: number;
  faults: FaultReport[];
  invariantViolations: Violation[];
  reboots: number;
  elapsedMs: number;
  ok: boolean;
};

export type DemoOptions = {
  nodes?: number;
  scenario?: string;
  policy?: Policy;
  /** An existing server (or a comma-separated cluster); by default the demo starts its own nats-server. */
  server?: string;
  /** Stream and bucket replicas (3 on a cluster). */
  replicas?: number;
  /** Progress lines (stderr); silent when absent. */
  progress?: (line: string) => void;
  timeoutMs?: number;
  rebootMs?: number;
  /** Replace the simulated provisioner (tests inject failures). */
  provisioner?: Provisioner;
  log?: Logger;
  /**
   * "simulated" (default): the simulated API server and cluster model (quick). "real": a real
   * Kubernetes control plane (kube-lab: etcd, kube-apiserver, kube-controller-manager,
   * kube-scheduler, built from Go modules on first use) with simulated kubelets and a CSI attacher.
   */
  kubernetes?: "simulated" | "real";
};

/** What the demo reads of the machines: where each StatefulSet replica runs (ground truth). */
type DemoCluster = Machines & ClusterTruth & { step?(now: number): void };

type DemoBackend = {
  cluster: DemoCluster;
  url: string;
  kubeconfig: string;
  /** Limits the node watch to the demo's nodes. */
  nodeSelector?: string;
  /** Record each step as an Event on the Node (the real API server has Events; the simulated one does not). */
  nodeEvents: boolean;
  stop(): Promise<void>;
};

/** The cluster model behind the simulated API server (plain HTTP on loopback). */
async function startSimulatedBackend(
  names: string[],
  stateful: Array<{ name: string; replicas: number }>,
  web: number,
  say: (line: string) => void,
): Promise<DemoBackend> {
  const cluster = new InMemoryCluster({ clock: systemClock, nodes: names, nodeMonitorGracePeriodMs: DEMO_NODE_MONITOR_GRACE_MS });
  for (const s of stateful) cluster.addStatefulSet(s.name, s.replicas);
  cluster.addDeployment("web", web);
  // The cluster actuator and the node-condition detector talk to the simulated cluster the way
  // they talk to a real one: @kubernetes/client-node over HTTP, from a kubeconfig.
  const kubernetes = await startKubernetesApiServer({ cluster, nodeMonitorGracePeriodMs: DEMO_NODE_MONITOR_GRACE_MS });
  const kubeDir = mkdtempSync(join(tmpdir(), "fenceline-demo-"));
  const kubeconfig = kubernetes.writeKubeconfig(kubeDir, "fenceline-demo");
  say(`Kubernetes API (simulated) on ${kubernetes.url}; kubeconfig ${kubeconfig}`);
  return {
    cluster,
    url: kubernetes.url,
    kubeconfig,
    nodeEvents: false,
    async stop() {
      await kubernetes.stop();
      rmSync(kubeDir, { recursive: true, force: true });
    },
  };
}

/** kube-lab: a real control plane, the machines' kubelets registering with it, the workloads bound by the real scheduler. */
async function startRealBackend(
  names: string[],
  stateful: Array<{ name: string; replicas: number }>,
  web: number,
  say: (line: string) => void,
): Promise<DemoBackend> {
  const cp = await startKubeControlPlane({ progress: (line) => say(`fenceline kube-lab: ${line}`) });
  try {
    const { machines, stop } = await startKubeLabMachines({
      admin: cp.admin,
      name: DEMO_NAMESPACE,
      nodes: names,
      workloads: { statefulSets: stateful, deployments: [{ name: "web", replicas: web }], daemonSet: true },
    });
    say(`Kubernetes ${cp.version} (real control plane) on ${cp.server}; kubeconfig ${cp.kubeconfig}; namespace ${DEMO_NAMESPACE}`);
    return {
      cluster: machines,
      url: cp.server,
      kubeconfig: cp.kubeconfig,
      nodeSelector: `${FLEET_LABEL}=${DEMO_NAMESPACE}`,
      nodeEvents: true,
      async stop() {
        await stop();
        await cp.stop();
      },
    };
  } catch (err) {
    await cp.stop();
    throw err;
  }
}

/** The namespace (and fleet, and zone) of the demo's workloads on the real control plane. */
const DEMO_NAMESPACE = "demo";

export type RunningDemo = {
  summary: DemoSummary;
  natsUrl: string;
  /** The Kubernetes API server (simulated, or kube-lab's real one) and a kubeconfig for it (kubectl, client libraries). */
  kubernetesUrl: string;
  kubernetesMode: "simulated" | "real";
  kubeconfig: string;
  /** The machines' ground truth: the cluster model, or kube-lab's simulated kubelets. */
  cluster: DemoCluster;
  fleet: SimFleet;
  /** The policy the control plane runs (the scenario's fencing levels, unless one was given). */
  policy: Policy;
  /** Each machine's BMC (power scenarios): `ipmitool -I lanplus -C 3 -H host -p port -U user -f passwordFile chassis power status`. */
  bmcs: Array<Pick<IpmiSimBmc, "name" | "host" | "port" | "user" | "passwordFile">>;
  /** Stops the fleet, the control plane and (if the demo started it) nats-server. */
  stop(): Promise<void>;
};

/** The simulated node controller marks a silent kubelet Ready=Unknown after this (40–50 s in Kubernetes). */
const DEMO_NODE_MONITOR_GRACE_MS = 3_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Simulated re-provisioning: takes a moment, always works. */
function simulatedProvisioner(): Provisioner {
  return {
    async run(step, node, hostGroup) {
      await sleep(150);
      return { ok: true, output: `${step} ${node} (host group ${hostGroup}): ok` };
    },
  };
}

/**
 * Runs the demo: a local nats-server, the control plane, a simulated fleet with workloads; waits
 * for the fleet to be healthy, injects the scenario's faults and waits until every faulted node
 * is healthy again with its stateful workloads running (or the timeout). Returns with
 * everything still running; call `stop()`.
 */
export async function runDemo(options: DemoOptions = {}): Promise<RunningDemo> {
  const started = Date.now();
  const scenario: Scenario | undefined = SCENARIOS[options.scenario ?? "default"];
  if (!scenario) throw new Error(`unknown scenario "${options.scenario}"; known: ${Object.keys(SCENARIOS).join(", ")}`);
  const nodeCount = options.nodes ?? 12;
  checkScenario(scenario, nodeCount);
  const policy = options.policy ?? (scenario.power ? withLevels(DEMO_POLICY, scenario.power.levels) : DEMO_POLICY);
  const say = options.progress ?? (() => {});
  const log = options.log ?? createLogger("fenceline-demo", { level: process.env.FENCELINE_LOG_LEVEL ?? "silent" });
  const timeoutMs = options.timeoutMs ?? (options.kubernetes === "real" ? 120_000 : 45_000);

  let server: NatsServer | undefined;
  let url = options.server;
  if (!url) {
    server = await startNatsServer({ log });
    url = server.url;
    say(`nats-server started on ${url} (store ${server.storeDir})`);
  }
  const nc = await connectNats(url, { name: "fenceline-demo" });

  const names = Array.from({ length: nodeCount }, (_, i) => `node-${i + 1}`);
  // Power scenarios: a BMC per machine (ipmi_sim), powering the simulated machine off and on.
  let fleetRef: SimFleet | undefined;
  const bmcs = scenario.power ? await startBmcs(names, () => fleetRef, say) : [];
  const fenceDevices = scenario.power ? ipmiFenceDevices(bmcs) : undefined;
  const stateful = [
    { name: "db", replicas: Math.min(3, nodeCount) },
    { name: "queue", replicas: Math.min(3, nodeCount) },
  ];
  const web = Math.max(1, Math.floor(nodeCount / 2));
  const backend =
    options.kubernetes === "real"
      ? await startRealBackend(names, stateful, web, say)
      : await startSimulatedBackend(names, stateful, web, say);
  const { cluster, kubeconfig } = backend;
  const kubeConfig = loadKubeConfig({ kubeconfig });

  const control: ControlPlane = await startControlPlane({
    nc,
    policy,
    log,
    cluster: createKubernetesCluster({ kubeConfig, log: log.child({ component: "kubernetes" }) }),
    provisioner: options.provisioner ?? simulatedProvisioner(),
    ...(options.replicas ? { replicas: options.replicas } : {}),
    ...(fenceDevices ? { fenceDevices } : {}),
    conditions: {
      watcher: createNodeWatcher({
        kubeConfig,
        log: log.child({ component: "node-watch" }),
        ...(backend.nodeSelector ? { labelSelector: backend.nodeSelector } : {}),
      }),
      rules: defaultConditionRules(0),
    },
    ...(backend.nodeEvents
      ? { nodeEvents: createNodeEventRecorder({ kubeConfig, instance: "fenceline-demo", log: log.child({ component: "node-events" }) }) }
      : {}),
  });
  say(`control plane up: engine, heartbeat and node-condition detectors, fleet guard, actuators (policy ${policy.version})`);

  const audit: AuditRecord[] = [];
  const auditSub = nc.subscribe(Subjects.auditAll, {
    callback: (err, msg) => {
      if (err) return;
      const parsed = AuditRecord.safeParse(msg.json());
      if (!parsed.success) return;
      audit.push(parsed.data);
      const r = parsed.data;
      if (r.changed && r.from !== "new") say(`  ${r.node.padEnd(8)} ${r.from} → ${r.to}${r.reason ? `  (${r.reason})` : ""}`);
    },
  });

  const violations = new Map<string, Violation>();
  const reports: FaultReport[] = [];
  const bootIdsAtFault = new Map<string, string>();
  const sim = await startSimFleetOnNats({
    url,
    connectionName: "fenceline-demo-agents",
    nodes: names,
    cluster,
    policy,
    rebootMs: options.rebootMs ?? 1_500,
    // Power scenarios show the boot gate: a machine powered on again starts its kubelet only once the engine lets it.
    ...(scenario.power ? { bootGate: true } : {}),
    log,
    onEvent: (e) => {
      if (e.what !== "up") say(`  ${e.node.padEnd(8)} [machine] ${e.what}`);
    },
    onStep: (now, fleet) => {
      for (const v of checkInvariants(cluster, now).violations) {
        const key = `${v.invariant}:${v.detail}`;
        if (!violations.has(key)) {
          violations.set(key, v);
          say(`  INVARIANT VIOLATED: ${v.invariant}: ${v.detail}`);
        }
      }
      if (reports.length > 0) update(reports, audit, cluster, fleet, bootIdsAtFault);
    },
  });
  const { fleet } = sim;
  fleetRef = fleet;
  say(
    `fleet of ${nodeCount} nodes started; workloads: ${stateful.map((s) => `StatefulSet ${s.name} ×${s.replicas}`).join(", ")}, Deployment web${options.kubernetes === "real" ? ", DaemonSet node-agent" : ""}`,
  );

  const healthy = () => {
    const latest = latestStates(audit);
    return names.every((n) => latest.get(n) === "healthy");
  };
  // Each agent has learned the whole fleet, and the engine has its contract: a silent node can then
  // be assumed fenced by the safe time (before, only a new boot id or an operator could tell).
  const guaranteed = () =>
    names.every((n) => {
      const context = control.engine.core.snapshot(n)?.context;
      const view = fleet.status(n).agent?.membership;
      return (
        context?.guarantee.timeBased === true &&
        view?.members.length === names.length &&
        context.contract?.membershipVersion === view.version
      );
    });
  const warmupMs = options.kubernetes === "real" ? 60_000 : 15_000;
  const warmupUntil = Date.now() + warmupMs;
  while (!healthy() || !guaranteed() || cluster.replicas().some((r) => r.runningOn.length === 0)) {
    if (Date.now() > warmupUntil)
      throw new Error(`the fleet did not become healthy, with every agent's contract heard, within ${warmupMs / 1000} s`);
    await sleep(50);
  }
  say("fleet healthy; every agent's fencing contract heard; all workloads running");

  const injectedAt = Date.now();
  const used = new Set<string>();
  const pick = (plan: FaultPlan): string => {
    const candidates = plan.pick === "stateful" ? statefulNodes(cluster).filter((n) => !used.has(n)) : [];
    const spare = names.filter((n) => !used.has(n) && !statefulNodes(cluster).includes(n));
    const node = candidates[0] ?? spare[0] ?? names.find((n) => !used.has(n));
    if (!node) throw new Error("not enough nodes for the scenario");
    used.add(node);
    return node;
  };
  for (const plan of [...scenario.faults].sort((a, b) => a.atMs - b.atMs)) {
    const wait = injectedAt + plan.atMs - Date.now();
    if (wait > 0) await sleep(wait);
    const targets: string[] = [];
    if (plan.kind === "partition-minority") {
      for (let i = 0; i < minorityGroupSize(plan.groupSize ?? 2, nodeCount); i++) targets.push(pick(plan));
    } else if (plan.kind === "control-plane-outage") {
      targets.push("*");
    } else {
      targets.push(pick(plan));
    }
    const at = Date.now();
    for (const node of targets) {
      const replicas = node === "*" ? [] : replicasOn(cluster, node);
      if (node !== "*") bootIdsAtFault.set(node, fleet.status(node).bootId);
      reports.push({
        node,
        kind: plan.kind,
        injectedAt: at,
        detectedAfterMs: null,
        fencedAfterMs: null,
        fencedBy: null,
        workloadsRecoveredAfterMs: null,
        rejoinedAfterMs: null,
        finalState: "healthy",
        reprovisioned: false,
        selfFenced: false,
        statefulReplicas: replicas,
      });
    }
    switch (plan.kind) {
      case "crash":
        await fleet.crash(targets[0]!, plan.forMs);
        break;
      case "network-loss":
        await fleet.networkLoss(targets[0]!, plan.forMs ?? 4_000);
        break;
      case "reboot":
        await fleet.reboot(targets[0]!);
        break;
      case "agent-crash":
        await fleet.agentCrash(targets[0]!, plan.restartAfterMs);
        break;
      case "hang":
        await fleet.hang(targets[0]!, { watchdog: plan.watchdog ?? "works" });
        break;
      case "partition-minority":
        await fleet.partition(targets, plan.forMs ?? 4_000);
        break;
      case "control-plane-outage":
        await fleet.controlPlaneOutage(plan.forMs ?? 6_000);
        break;
    }
    say(
      `FAULT ${plan.kind} on ${targets.join(", ")}${
        targets[0] !== "*"
          ? ` (stateful: ${
              reports
                .filter((r) => targets.includes(r.node))
                .flatMap((r) => r.statefulReplicas)
                .join(", ") || "none"
            })`
          : ""
      }`,
    );
  }

  const lastFaultEnds = Math.max(...scenario.faults.map((f) => injectedAt + f.atMs + (f.forMs ?? 0)));
  const deadline = started + timeoutMs;
  const settled = () => {
    if (Date.now() < lastFaultEnds + 1_500) return false;
    return (
      reports.every((r) => r.finalState === "healthy" && (r.statefulReplicas.length === 0 || r.workloadsRecoveredAfterMs !== null)) &&
      healthy()
    );
  };
  while (!settled() && Date.now() < deadline) await sleep(100);
  update(reports, audit, cluster, fleet, bootIdsAtFault);

  const reboots = names.reduce((sum, n) => sum + Math.max(0, fleet.status(n).boots - 1), 0);
  const summary: DemoSummary = {
    scenario: scenario.name,
    nodes: nodeCount,
    eventsProcessed: audit.length,
    faults: reports,
    invariantViolations: [...violations.values()],
    reboots,
    elapsedMs: Date.now() - started,
    ok: violations.size === 0 && reports.every((r) => r.finalState === "healthy"),
  };

  return {
    summary,
    natsUrl: url,
    kubernetesUrl: backend.url,
    kubernetesMode: options.kubernetes ?? "simulated",
    kubeconfig,
    cluster,
    fleet,
    policy,
    bmcs: bmcs.map(({ name, host, port, user, passwordFile }) => ({ name, host, port, user, passwordFile })),
    async stop() {
      await sim.stop();
      auditSub.unsubscribe();
      await control.stop();
      await Promise.all(bmcs.map((b) => b.stop()));
      await backend.stop();
      await nc.drain().catch(() => {});
      await server?.stop();
    },
  };
}

/** The demo's policy with the scenario's fencing levels (the switches follow from them). */
function withLevels(policy: Policy, levels: string[][]): Policy {
  const { timeoutMs, watchdogKinds, unfence } = policy.fencing;
  return Policy.parse({ ...policy, version: `${policy.version}-power`, fencing: { levels, timeoutMs, watchdogKinds, unfence } });
}

async function startBmcs(names: string[], fleet: () => SimFleet | undefined, say: (line: string) => void): Promise<IpmiSimBmc[]> {
  if (!ipmiSimAvailable())
    throw new Error("this scenario needs OpenIPMI's ipmi_sim and ipmitool (Debian/Ubuntu: apt-get install openipmi ipmitool fence-agents)");
  const bmcs: IpmiSimBmc[] = [];
  try {
    for (const name of names) {
      bmcs.push(
        await startIpmiSimBmc({
          name,
          machine: {
            power: () => fleet()?.powerState(name) ?? "on",
            setPower: async (on) => {
              const f = fleet();
              if (!f) return;
              if (on) await f.powerOn(name);
              else await f.powerOff(name);
            },
          },
        }),
      );
    }
  } catch (err) {
    await Promise.all(bmcs.map((b) => b.stop()));
    throw err;
  }
  say(`BMCs (ipmi_sim, IPMI over LAN) for ${names.length} machines on ${bmcs[0]?.host} UDP ports ${bmcs.map((b) => b.port).join(", ")}`);
  return bmcs;
}

/** fence_ipmilan against each machine's BMC, as a fence devices file would name them. */
function ipmiFenceDevices(bmcs: IpmiSimBmc[]): FenceDevice[] {
  const config = FenceDevicesConfig.parse({
    devices: {
      ipmi: {
        agent: "fence_ipmilan",
        params: { lanplus: true, cipher: 3, power_wait: 0 },
        nodes: Object.fromEntries(
          bmcs.map((b) => [b.name, { params: { ip: b.host, ipport: b.port, username: b.user }, password: { file: b.passwordFile } }]),
        ),
        timeoutMs: "8s",
        retries: 1,
        retryDelayMs: "500ms",
        confirmWithinMs: "10s",
        pollMs: "250ms",
      },
    },
  });
  return createFenceDevices(config, { readSecret: createSecretReader() });
}

function latestStates(audit: AuditRecord[]): Map<string, string> {
  const latest = new Map<string, { seq: number; to: string }>();
  for (const r of audit) {
    const prev = latest.get(r.node);
    if (!prev || r.seq > prev.seq) latest.set(r.node, { seq: r.seq, to: r.to });
  }
  return new Map([...latest].map(([n, v]) => [n, v.to]));
}

function replicasOn(cluster: DemoCluster, node: string): string[] {
  return cluster
    .replicas()
    .filter((r) => r.runningOn.includes(node))
    .map((r) => r.replica)
    .sort();
}

function statefulNodes(cluster: DemoCluster): string[] {
  const nodes = new Set<string>();
  for (const r of [...cluster.replicas()].sort((a, b) => a.replica.localeCompare(b.replica))) for (const n of r.runningOn) nodes.add(n);
  return [...nodes];
}

/** Fills in each fault's timings from the audit trail and the cluster's truth. */
function update(reports: FaultReport[], audit: AuditRecord[], cluster: DemoCluster, fleet: SimFleet, bootIds: Map<string, string>) {
  const byNode = new Map<string, AuditRecord[]>();
  for (const r of [...audit].sort((a, b) => a.seq - b.seq)) {
    const list = byNode.get(r.node) ?? [];
    list.push(r);
    byNode.set(r.node, list);
  }
  const latest = latestStates(audit);
  for (const report of reports) {
    if (report.node === "*") {
      const all = [...latest.values()];
      report.finalState = all.every((s) => s === "healthy") ? "healthy" : (all.find((s) => s !== "healthy") ?? "healthy");
      const after = audit.filter((r) => r.at >= report.injectedAt);
      const detected = after.find((r) => r.event.type === "heartbeat.missed");
      report.detectedAfterMs = detected ? detected.at - report.injectedAt : null;
      const fenced = after.find((r) => r.from === "fencing" && r.changed);
      report.fencedAfterMs = fenced ? fenced.at - report.injectedAt : null;
      report.reprovisioned = after.some((r) => r.commands.some((c) => c.kind === "reprovision"));
      report.selfFenced = fleet.nodes.some((n) => fleet.status(n).selfFences.some((s) => s.at >= report.injectedAt));
      continue;
    }
    const t0 = report.injectedAt;
    const records = (byNode.get(report.node) ?? []).filter((r) => r.at >= t0 - 50);
    Object.assign(report, faultTimings(records, t0));
    report.finalState = latest.get(report.node) ?? "unknown";
    report.reprovisioned = records.some((r) => r.commands.some((c) => c.kind === "reprovision"));
    report.selfFenced = fleet.status(report.node).selfFences.some((s) => s.at >= t0);
    if (report.workloadsRecoveredAfterMs === null && report.statefulReplicas.length > 0) {
      const status = fleet.status(report.node);
      const rebooted = status.bootId !== bootIds.get(report.node) && status.power === "up";
      const running = cluster.replicas().filter((r) => report.statefulReplicas.includes(r.replica));
      const allBack = running.every((r) => r.runningOn.length > 0 && (r.runningOn.some((n) => n !== report.node) || rebooted));
      if (allBack && running.length === report.statefulReplicas.length) report.workloadsRecoveredAfterMs = Date.now() - t0;
    }
  }
}
