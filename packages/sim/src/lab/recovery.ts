import { DEFAULT_POLICY, OUT_OF_SERVICE_TAINT, Policy, safeTimeOf } from "@fenceline/contracts";
import { REAL_BMC_TIMING, simBmcDevices } from "../bmc/sim-bmc.js";
import { checkInvariants } from "../invariants.js";
import { InMemoryCluster } from "../cluster.js";
import { VirtualClock } from "@fenceline/testing";
import { LAB_EPOCH } from "./run-seed.js";
import { Prng } from "./prng.js";
import { LabWorld } from "./world.js";

/**
 * The recovery benchmark: the same hard failures under three timing models, on the same cluster
 * model and clock. A case is one machine running a StatefulSet replica that crashes hard; it
 * comes back after a while in some cases and never in others.
 *
 * - "fenceline": the real engine, detector, actuators and agents with the given policy
 *   (default: DEFAULT_POLICY) and production's 30 s ack wait.
 * - "fenceline-power": the same, fencing by power first: every machine has a BMC (simulated:
 *   fence_ipmilan's output and a server BMC's latencies, `REAL_BMC_TIMING`) and the policy the
 *   levels [ipmi], then [watchdog] (`powerPolicy`).
 * - "kubernetes": no remediator. The node lifecycle controller evicts the dead node's pods after
 *   node-monitor-grace-period 50 s (the default since 1.32) + the default 300 s toleration; a StatefulSet pod then stays
 *   Terminating until the node returns (nothing can confirm it is gone).
 * - "nhc-snr": Node Health Check + Self Node Remediation with their documented defaults, as a
 *   small remediator of its own (below).
 */
export type RecoveryModel = "fenceline" | "fenceline-power" | "kubernetes" | "nhc-snr";
export const RECOVERY_MODELS: readonly RecoveryModel[] = ["fenceline", "fenceline-power", "kubernetes", "nhc-snr"];

/**
 * The policy of the "fenceline-power" model: the given one with the levels [ipmi] (60 s, as
 * Pacemaker's stonith-timeout), then [watchdog].
 */
export function powerPolicy(policy: Policy = DEFAULT_POLICY): Policy {
  const { timeoutMs, watchdogKinds, unfence } = policy.fencing;
  return Policy.parse({
    ...policy,
    version: `${policy.version}+ipmi`,
    fencing: { levels: [["ipmi"], ["watchdog"]], timeoutMs, watchdogKinds, unfence },
  });
}

/**
 * The fence device of the "fenceline-power" model: fence_ipmilan with the production defaults
 * (20 s per run, 2 retries, read back within 20 s every 0.5 s), fence_ipmilan's own
 * `power_wait` set to 0 (Fenceline reads the state back itself; docs/fencing.md).
 */
export const BENCH_BMC_DEVICES = simBmcDevices({
  timeoutMs: 20_000,
  retries: 2,
  retryDelayMs: 1_000,
  confirmWithinMs: 20_000,
  pollMs: 500,
});

export type RecoveryCase = {
  id: number;
  seed: number;
  nodes: number;
  /** When the machine crashes, after the fleet is up. */
  crashAtMs: number;
  /** When it comes back (after the crash), or null: never. */
  returnsAfterMs: number | null;
  /** Phase of the kubelet's 10 s lease renewals. */
  leasePhaseMs: number;
  /** The crashed machine is the one running this StatefulSet replica. */
  replica: string;
};

export type RecoveryOutcome = {
  model: RecoveryModel;
  caseId: number;
  node: string;
  replicas: string[];
  /** From the crash to every replica of the node running again (anywhere), or null. */
  recoveredAfterMs: number | null;
  violations: string[];
};

/** Kubernetes defaults (kube-controller-manager and the DefaultTolerationSeconds admission plugin). */
export const KUBERNETES_DEFAULTS = {
  leaseRenewMs: 10_000,
  nodeMonitorPeriodMs: 5_000,
  nodeMonitorGracePeriodMs: 50_000,
  tolerationSeconds: 300,
} as const;

/** Self Node Remediation defaults (api/v1alpha1/selfnoderemediationconfig_types.go). */
export const SNR_DEFAULTS = {
  apiCheckIntervalMs: 15_000,
  apiServerTimeoutMs: 5_000,
  maxApiErrorThreshold: 3,
  peerDialTimeoutMs: 5_000,
  peerRequestTimeoutMs: 7_000,
  /** MaxTimeForNoPeersResponse. */
  minPeersResponseMs: 30_000,
  /** A softdog, or a missing watchdog-timeout annotation: "max default watchdog timeout per kernel docs". */
  watchdogTimeoutMs: 60_000,
  rebootMarginMs: 30_000,
} as const;

/** Node Health Check's default unhealthy conditions: Ready=False or Ready=Unknown for 300 s. */
export const NHC_UNHEALTHY_MS = 300_000;

/** SNR's peer batches (internal/utils/peers.go): 3 first, then max(3, floor((W-3)/10)), the last truncated. */
export function snrPeerBatches(workers: number): number {
  let left = workers;
  let batches = 0;
  const later = Math.max(3, Math.floor((workers - 3) / 10));
  for (let size = 3; left > 0; size = later) {
    left -= Math.min(size, left);
    batches += 1;
  }
  return batches;
}

/**
 * SNR's minimum safe time (internal/reboot/calculator.go):
 *   MaxApiErrorThreshold × (ApiCheckInterval + ApiServerTimeout)
 *   + max(MaxTimeForNoPeersResponse, nBatches(W) × (PeerDialTimeout + PeerRequestTimeout))
 *   + watchdogTimeout + 30 s
 * = 3 × (15 + 5) + max(30, 2 × (5 + 7)) + 60 + 30 = 180 s with the defaults and ≤ 6 workers.
 */
export function snrSafeTimeMs(workers: number): number {
  const d = SNR_DEFAULTS;
  return (
    d.maxApiErrorThreshold * (d.apiCheckIntervalMs + d.apiServerTimeoutMs) +
    Math.max(d.minPeersResponseMs, snrPeerBatches(workers) * (d.peerDialTimeoutMs + d.peerRequestTimeoutMs)) +
    d.watchdogTimeoutMs +
    d.rebootMarginMs
  );
}

/** `count` cases from `seed`: half the machines come back after 1–20 min, half never. */
export function recoveryCases(count: number, seed = 1): RecoveryCase[] {
  const rng = new Prng(seed);
  return Array.from({ length: count }, (_, i) => {
    const r = rng.fork(i + 1);
    return {
      id: i + 1,
      seed: seed * 1_000 + i + 1,
      nodes: r.int(5, 9),
      crashAtMs: r.int(0, 10_000),
      returnsAfterMs: r.chance(0.5) ? r.int(60_000, 20 * 60_000) : null,
      leasePhaseMs: r.int(0, KUBERNETES_DEFAULTS.leaseRenewMs - 1),
      replica: `db-${r.int(0, 2)}`,
    };
  });
}

const WARMUP_MS = 10_000;
const drain = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Which replicas the machine runs, and when all of them run again (anywhere). */
class Recovery {
  readonly replicas: string[];
  recoveredAt: number | null = null;
  constructor(
    readonly cluster: InMemoryCluster,
    readonly node: string,
  ) {
    this.replicas = cluster
      .replicas()
      .filter((r) => r.runningOn.includes(node))
      .map((r) => r.replica)
      .sort();
  }
  observe(now: number): void {
    if (this.recoveredAt !== null) return;
    const running = new Map(this.cluster.replicas().map((r) => [r.replica, r.runningOn.length > 0]));
    if (this.replicas.every((r) => running.get(r))) this.recoveredAt = now;
  }
}

function nodesOf(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `node-${i + 1}`);
}

/** The node that runs the case's replica (every case crashes a node with a stateful replica). */
function victim(cluster: InMemoryCluster, replica: string): string {
  const node = cluster.replicas().find((r) => r.replica === replica)?.runningOn[0];
  if (!node) throw new Error(`${replica} does not run before the crash`);
  return node;
}

export async function runRecoveryCase(
  model: RecoveryModel,
  c: RecoveryCase,
  options: { horizonMs?: number; policy?: Policy } = {},
): Promise<RecoveryOutcome> {
  const horizonMs = options.horizonMs ?? 30 * 60_000;
  if (model === "fenceline") return fencelineCase(c, horizonMs, options.policy ?? DEFAULT_POLICY);
  if (model === "fenceline-power") return fencelineCase(c, horizonMs, powerPolicy(options.policy ?? DEFAULT_POLICY), true);
  return clusterOnlyCase(model, c, horizonMs);
}

async function fencelineCase(c: RecoveryCase, horizonMs: number, policy: Policy, power = false): Promise<RecoveryOutcome> {
  const clock = new VirtualClock(LAB_EPOCH);
  const world = new LabWorld({
    clock,
    rng: new Prng(c.seed),
    policy,
    nodes: nodesOf(c.nodes),
    statefulSets: [{ name: "db", replicas: 3 }],
    deployments: [{ name: "web", replicas: 2 }],
    rebootMs: 30_000,
    ackWaitMs: 30_000,
    unreachableEvictionMs: KUBERNETES_DEFAULTS.nodeMonitorGracePeriodMs + KUBERNETES_DEFAULTS.tolerationSeconds * 1000,
    ...(power ? { power: { devices: BENCH_BMC_DEVICES, timing: REAL_BMC_TIMING } } : {}),
  });
  const violations = new Set<string>();
  let recovery: Recovery | null = null;
  const step = async (until: number, stop: () => boolean) => {
    for (;;) {
      const next = clock.nextDueAt();
      if (next === undefined || next > until) {
        clock.advanceTo(until);
        await drain();
        return;
      }
      clock.advanceTo(next);
      await drain();
      world.checker.step(clock.now());
      recovery?.observe(clock.now());
      if (stop()) return;
    }
  };
  await world.start();
  await step(LAB_EPOCH + WARMUP_MS + c.crashAtMs, () => false);
  const node = victim(world.cluster, c.replica);
  recovery = new Recovery(world.cluster, node);
  const crashedAt = clock.now();
  await world.fleet.crash(node, c.returnsAfterMs ?? undefined);
  const r = recovery;
  await step(crashedAt + horizonMs, () => r.recoveredAt !== null && clock.now() >= r.recoveredAt + 1_000);
  for (const f of world.checker.failures) violations.add(`${f.invariant}: ${f.detail}`);
  await world.stop();
  return {
    model: power ? "fenceline-power" : "fenceline",
    caseId: c.id,
    node,
    replicas: r.replicas,
    recoveredAfterMs: r.recoveredAt === null ? null : r.recoveredAt - crashedAt,
    violations: [...violations],
  };
}

/**
 * Plain Kubernetes, or Kubernetes with NHC + SNR, on the same cluster model. The machine is
 * modelled by the cluster alone (a dead machine runs nothing; a returning one boots); the
 * remediator below is driven by the same virtual clock.
 */
async function clusterOnlyCase(model: "kubernetes" | "nhc-snr", c: RecoveryCase, horizonMs: number): Promise<RecoveryOutcome> {
  const clock = new VirtualClock(LAB_EPOCH);
  const names = nodesOf(c.nodes);
  const cluster = new InMemoryCluster({
    clock,
    nodes: names,
    unreachableEvictionMs: KUBERNETES_DEFAULTS.nodeMonitorGracePeriodMs + KUBERNETES_DEFAULTS.tolerationSeconds * 1000,
  });
  cluster.addStatefulSet("db", 3);
  cluster.addDeployment("web", 2);
  const remediator = model === "nhc-snr" ? new NhcSnrModel(cluster, names.length, c.leasePhaseMs) : null;
  const violations = new Set<string>();
  const stepMs = 500;
  let recovery: Recovery | null = null;
  const runTo = (until: number, stop: () => boolean) => {
    while (clock.now() < until) {
      clock.advance(Math.min(stepMs, until - clock.now()));
      const now = clock.now();
      cluster.step(now);
      remediator?.tick(now);
      for (const v of checkInvariants(cluster, now).violations) violations.add(`${v.invariant}: ${v.detail}`);
      recovery?.observe(now);
      if (stop()) return;
    }
  };
  runTo(LAB_EPOCH + WARMUP_MS + c.crashAtMs, () => false);
  const node = victim(cluster, c.replica);
  recovery = new Recovery(cluster, node);
  const crashedAt = clock.now();
  cluster.crash(node);
  if (c.returnsAfterMs !== null) clock.setTimeout(() => cluster.boot(node), c.returnsAfterMs);
  const r = recovery;
  runTo(crashedAt + horizonMs, () => r.recoveredAt !== null);
  return {
    model,
    caseId: c.id,
    node,
    replicas: r.replicas,
    recoveredAfterMs: r.recoveredAt === null ? null : r.recoveredAt - crashedAt,
    violations: [...violations],
  };
}

/**
 * Node Health Check + Self Node Remediation at their defaults, from the node's side as the API
 * server sees it:
 * 1. the kubelet renews its Lease every 10 s; the node lifecycle controller (every 5 s) sets
 *    Ready=Unknown once no renewal came for node-monitor-grace-period (50 s);
 * 2. NHC creates a SelfNodeRemediation once Ready=Unknown has lasted 300 s;
 * 3. SNR's manager assumes the node rebooted `snrSafeTimeMs(workers)` (180 s) after that
 *    (timeAssumedRebooted), then remediates with its default Automatic strategy, which on
 *    Kubernetes ≥ 1.28 is the out-of-service taint (PodGC and the force detach do the rest);
 * 4. when the node is Ready again NHC deletes the remediation and SNR removes the taint.
 * The unhealthy node's own agent (API checks, peers, watchdog) does not matter for a machine
 * that is dead, and is not modelled.
 */
export class NhcSnrModel {
  readonly safeTimeMs: number;
  readonly #nodes = new Map<string, { lastRenewal: number; unknownSince: number | null; remediationAt: number | null; tainted: boolean }>();
  #nextMonitor = 0;

  constructor(
    readonly cluster: InMemoryCluster,
    workers: number,
    readonly leasePhaseMs: number,
  ) {
    this.safeTimeMs = snrSafeTimeMs(workers);
    for (const n of cluster.nodes()) this.#nodes.set(n.name, { lastRenewal: 0, unknownSince: null, remediationAt: null, tainted: false });
  }

  tick(now: number): void {
    const k = KUBERNETES_DEFAULTS;
    for (const view of this.cluster.nodes()) {
      const st = this.#nodes.get(view.name)!;
      const responsive = view.power === "on" && !view.crashed && view.kubeletRunning && view.reachable;
      // The kubelet's lease renewals, on their 10 s grid.
      if (responsive) st.lastRenewal = now - ((now - this.leasePhaseMs) % k.leaseRenewMs);
    }
    if (now >= this.#nextMonitor) {
      this.#nextMonitor = now + k.nodeMonitorPeriodMs;
      for (const [name, st] of this.#nodes) {
        const view = this.cluster.node(name)!;
        const responsive = view.power === "on" && !view.crashed && view.kubeletRunning && view.reachable;
        if (responsive) {
          // Ready again: NHC deletes the remediation, SNR lifts the out-of-service taint.
          st.unknownSince = null;
          st.remediationAt = null;
          if (st.tainted) {
            void this.cluster.removeTaint(name, OUT_OF_SERVICE_TAINT);
            st.tainted = false;
          }
          continue;
        }
        if (st.unknownSince === null && now - st.lastRenewal >= k.nodeMonitorGracePeriodMs) st.unknownSince = now;
      }
    }
    for (const [name, st] of this.#nodes) {
      if (st.unknownSince !== null && st.remediationAt === null && now - st.unknownSince >= NHC_UNHEALTHY_MS) st.remediationAt = now;
      if (st.remediationAt !== null && !st.tainted && now - st.remediationAt >= this.safeTimeMs) {
        void this.cluster.addTaint(name, OUT_OF_SERVICE_TAINT);
        st.tainted = true;
      }
    }
  }
}

/** Percentile (nearest rank) of sorted values. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

export type RecoverySummary = {
  name: RecoveryModel;
  cases: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  neverRecovered: number;
  violations: number;
};

export function summarize(model: RecoveryModel, outcomes: readonly RecoveryOutcome[]): RecoverySummary {
  const times = outcomes
    .map((o) => o.recoveredAfterMs)
    .filter((t): t is number => t !== null)
    .sort((a, b) => a - b);
  return {
    name: model,
    cases: outcomes.length,
    p50Ms: percentile(times, 50),
    p99Ms: percentile(times, 99),
    maxMs: times.length > 0 ? times[times.length - 1]! : null,
    neverRecovered: outcomes.filter((o) => o.recoveredAfterMs === null).length,
    violations: outcomes.reduce((sum, o) => sum + o.violations.length, 0),
  };
}

/** What the fenceline model's policy promises, for the table's notes. */
export function fencelineTimeline(policy: Policy = DEFAULT_POLICY): string {
  return `heartbeat timeout ${policy.heartbeat.timeoutMs / 1000}s, unhealthy ${policy.unhealthyDurationMs / 1000}s, safe time ${safeTimeOf(policy) / 1000}s from the last heartbeat`;
}
