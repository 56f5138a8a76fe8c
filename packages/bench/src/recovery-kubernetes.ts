import { readFileSync } from "node:fs";
import { type AuditRecord, DEFAULT_POLICY, safeTimeOf, type Policy, type Provisioner } from "@fenceline/contracts";
import { createLogger } from "@fenceline/bus";
import { loadKubeConfig } from "@fenceline/kubernetes";
import {
  createKubeClient,
  isRunningAndReady,
  startInformer,
  startKubeControlPlane,
  type KubeClient,
  type KubeControlPlane,
  type KubeletFleet,
  type KubeObject,
} from "@fenceline/kube-lab";
import { checkInvariants, percentile, Prng, type Violation } from "@fenceline/sim";
import { startKubeLabFenceline, startKubeLabMachines, type KubeLabWorkloads } from "./kube-lab-fleet.js";

/**
 * `fenceline bench recovery --kubernetes real`: hard crashes of machines running a StatefulSet
 * replica (a ReadWriteOnce CSI volume) on a real control plane (kube-lab), measured from the
 * crash to the replacement pod Running and Ready on another node, under two models side by side:
 *
 * - "fenceline": the real engine, detectors, fleet guard, actuators and agents over a local
 *   nats-server, as `fenceline up` runs them, with the given policy (default DEFAULT_POLICY).
 *   Crashes come in rounds of `concurrent` machines; after a round the crashed machines boot
 *   again and rejoin, so the same fleet serves the next round.
 * - "kubernetes": no Fenceline. Each crash in a zone of its own (3 nodes), so that the node
 *   lifecycle controller's per-zone eviction rate limit (one node every 10 s) and disruption
 *   rules see one failure, as in a cluster where one machine dies. The machine stays down.
 *
 * Ground truth (which containers run where, which volumes the storage has attached where) is
 * checked for the invariants every 25 ms in both.
 */
export type RealRecoveryOptions = {
  /** Fenceline crashes (default 24). */
  cases: number;
  /** Crashes of the kubernetes model, all at once, each in its own zone (default 4). */
  kubernetesCases: number;
  /** Fenceline fleet size (default 12). */
  nodes: number;
  /** Fenceline crashes per round (default 4; the fleet guard needs a healthy majority). */
  concurrent: number;
  horizonMs: number;
  seed: number;
  policy?: Policy;
  /** An existing control plane (admin credentials); by default one is started and stopped. */
  kubeconfig?: string;
  progress: (line: string) => void;
};

export type CrashOutcome = {
  node: string;
  replica: string;
  crashedAt: number;
  /** Crash to the replacement pod Running and Ready on another node (API view), or null within the horizon. */
  recoveredAfterMs: number | null;
  /** Fenceline: recovered minus the safety floor (the safe time after the last heartbeat the engine received). */
  overFloorMs?: number | null;
  /**
   * Fenceline's own part of that: from the floor to the out-of-service taint requested (the
   * safe-time timer, the fleet guard, fencing confirmed, the server version), plus from the pod
   * marked for deletion by the taint eviction controller to its object force-deleted. The rest is
   * the controllers': taint eviction, StatefulSet, scheduler, attach-detach, the kubelet.
   */
  fencelineShareMs?: number | null;
  detectedAfterMs?: number | null;
  fencedAfterMs?: number | null;
  /** Fenceline: the out-of-service taint requested (the remediation step entered). */
  taintAfterMs?: number | null;
  /** Kubernetes: when the pod was marked for deletion (the taint eviction controller). */
  evictedAfterMs?: number | null;
};

export type RealModelSummary = {
  name: "fenceline" | "kubernetes";
  crashes: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  neverRecovered: number;
  violations: number;
  [extra: string]: unknown;
};

export type RealRecoveryResult = {
  kubernetesVersion: string;
  controlPlaneStartMs: number | null;
  wallMs: number;
  horizonMs: number;
  models: RealModelSummary[];
  outcomes: Record<"fenceline" | "kubernetes", CrashOutcome[]>;
  violations: Record<"fenceline" | "kubernetes", Violation[]>;
  policy: Policy;
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Re-provisioning of a rejoining machine: immediate and successful (no installer here). */
const instantProvisioner: Provisioner = { run: async (step, node) => ({ ok: true, output: `${step} ${node}: ok` }) };

/** The server, CA and token of a kubeconfig's current context. */
export function kubeAccessOf(kubeconfig: string) {
  const kc = loadKubeConfig({ kubeconfig });
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (!cluster || !user?.token) throw new Error(`${kubeconfig}: needs a current context with a server and a bearer token`);
  const ca = cluster.caData
    ? Buffer.from(cluster.caData, "base64").toString("utf8")
    : cluster.caFile
      ? readFileSync(cluster.caFile, "utf8")
      : "";
  return { server: cluster.server, ca, token: user.token };
}

function stats(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), maxMs: sorted.length ? sorted[sorted.length - 1]! : null };
}

/** Watches the StatefulSet pods and settles each crash: evicted (marked for deletion) and recovered (Ready elsewhere). */
type TrackedCrash = {
  node: string;
  replica: string;
  crashedAt: number;
  namespace: string;
  pod: string;
  /** Marked for deletion (the taint eviction controller), deleted (the API object gone), replacement Ready elsewhere. */
  evictedAt?: number;
  goneAt?: number;
  recoveredAt?: number;
};

function crashTracker(admin: KubeClient) {
  const open: TrackedCrash[] = [];
  const observe = (pod: KubeObject, deleted: boolean) => {
    const now = Date.now();
    for (const c of open) {
      if (pod.metadata.namespace !== c.namespace || pod.metadata.name !== c.pod) continue;
      if (pod.spec?.nodeName === c.node && (pod.metadata.deletionTimestamp || deleted) && c.evictedAt === undefined) c.evictedAt = now;
      if (pod.spec?.nodeName === c.node && deleted && c.goneAt === undefined) c.goneAt = now;
      if (deleted) continue;
      if (c.recoveredAt === undefined && isRunningAndReady(pod) && pod.spec?.nodeName && pod.spec.nodeName !== c.node) c.recoveredAt = now;
    }
  };
  const informer = startInformer(admin, "/api/v1/pods", { labelSelector: "app=db" }, (change) =>
    observe(change.object, change.type === "DELETED"),
  );
  return {
    synced: informer.synced,
    track(node: string, replica: string, crashedAt: number): TrackedCrash {
      const [namespace, pod] = replica.split("/") as [string, string];
      const entry: TrackedCrash = { node, replica, crashedAt, namespace, pod };
      open.push(entry);
      return entry;
    },
    stop: () => informer.stop(),
  };
}

/** The replicas running on one online machine each (ground truth), the machine running them. */
function replicaNodes(machines: KubeletFleet): Array<{ replica: string; node: string }> {
  return machines
    .replicas()
    .filter((r) => r.runningOn.length === 1 && machines.machine(r.runningOn[0]!).online)
    .map((r) => ({ replica: r.replica, node: r.runningOn[0]! }));
}

export async function runRealRecoveryBench(options: RealRecoveryOptions): Promise<RealRecoveryResult> {
  const started = Date.now();
  const { progress } = options;
  const policy = options.policy ?? DEFAULT_POLICY;
  const rng = new Prng(options.seed);
  const log = createLogger("bench-recovery-real", { level: process.env.FENCELINE_LOG_LEVEL ?? "silent" });
  const cleanups: Array<() => Promise<unknown>> = [];
  let cp: KubeControlPlane | undefined;
  try {
    let admin: KubeClient;
    let kubeconfig: string;
    if (options.kubeconfig) {
      admin = createKubeClient(kubeAccessOf(options.kubeconfig));
      kubeconfig = options.kubeconfig;
    } else {
      cp = await startKubeControlPlane({ progress: (line) => progress(`fenceline kube-lab: ${line}`) });
      admin = cp.admin;
      kubeconfig = cp.kubeconfig;
    }
    const version = ((await admin.get("/version")) as unknown as { gitVersion: string }).gitVersion.replace(/^v/, "");
    const run = (Date.now() % 46_656).toString(36).padStart(3, "0");
    const tracker = crashTracker(admin);
    cleanups.push(async () => tracker.stop());
    await tracker.synced;
    const workloads = (replicas: number): KubeLabWorkloads => ({ statefulSets: [{ name: "db", replicas }], daemonSet: true });

    // The kubernetes model: one zone of 3 nodes per crash, 2 replicas in each.
    const zones: Array<{ machines: KubeletFleet }> = [];
    const kubeViolations = new Map<string, Violation>();
    progress(`starting ${options.kubernetesCases} zones of 3 nodes (kubernetes model) and a fleet of ${options.nodes} (fenceline model)`);
    for (let z = 1; z <= options.kubernetesCases; z++) {
      const name = `k8s-${run}-${z}`;
      const nodes = [1, 2, 3].map((i) => `${name}-${i}`);
      const zone = await startKubeLabMachines({ admin, name, nodes, workloads: workloads(2) });
      cleanups.push(zone.stop);
      zones.push(zone);
    }
    const kubeChecks = setInterval(() => {
      const now = Date.now();
      for (const { machines } of zones) {
        for (const v of checkInvariants(machines, now).violations) kubeViolations.set(`${v.invariant}:${v.detail}`, v);
      }
    }, 25);
    cleanups.push(async () => clearInterval(kubeChecks));

    const flName = `fl-${run}`;
    const fl = await startKubeLabFenceline({
      admin,
      kubeconfig,
      name: flName,
      nodes: Array.from({ length: options.nodes }, (_, i) => `${flName}-${i + 1}`),
      policy,
      workloads: workloads(options.concurrent),
      provisioner: instantProvisioner,
      log,
      rebootMs: 1_000,
      conditions: { durationMs: 30_000 },
    });
    cleanups.push(fl.stop);
    progress(`fleets ready in ${((Date.now() - started) / 1000).toFixed(1)} s; crashing`);

    // Kubernetes: every zone's crash at once (spread over one lease period), the machines stay down.
    const kubeCrashes = await Promise.all(
      zones.map(async ({ machines }) => {
        await sleep(rng.int(0, 10_000));
        const [victim] = replicaNodes(machines);
        if (!victim) throw new Error(`${machines.fleet}: no replica running`);
        machines.crash(victim.node);
        return tracker.track(victim.node, victim.replica, Date.now());
      }),
    );
    const kubeDone = (async () => {
      const end = Math.max(...kubeCrashes.map((c) => c.crashedAt)) + options.horizonMs;
      while (Date.now() < end && kubeCrashes.some((c) => c.recoveredAt === undefined)) await sleep(250);
    })();

    // Fenceline: rounds of concurrent crashes; the machines boot again once the round is over.
    const flCrashes: TrackedCrash[] = [];
    while (flCrashes.length < options.cases) {
      const victims = replicaNodes(fl.machines).slice(0, Math.min(options.concurrent, options.cases - flCrashes.length));
      if (victims.length === 0) throw new Error("fenceline model: no replica running on an online machine");
      const round = await Promise.all(
        victims.map(async (v) => {
          await sleep(rng.int(0, 2 * policy.heartbeat.intervalMs));
          await fl.fleet.crash(v.node);
          return tracker.track(v.node, v.replica, Date.now());
        }),
      );
      flCrashes.push(...round);
      const end = Math.max(...round.map((c) => c.crashedAt)) + options.horizonMs;
      while (Date.now() < end && round.some((c) => c.recoveredAt === undefined)) await sleep(100);
      progress(
        `fenceline: ${flCrashes.length}/${options.cases} crashes; this round ${round.map((c) => (c.recoveredAt === undefined ? "never" : `${((c.recoveredAt - c.crashedAt) / 1000).toFixed(1)} s`)).join(", ")}`,
      );
      for (const c of round) await fl.fleet.bootAgain(c.node);
      const until = Date.now() + 120_000;
      const ready = async () =>
        fl.machines.nodes.every((n) => fl.latest(n) === "healthy") &&
        replicaNodes(fl.machines).length === options.concurrent &&
        ((await admin.list(`/api/v1/namespaces/${flName}/pods`)).items as KubeObject[]).every(isRunningAndReady);
      while (!(await ready())) {
        if (Date.now() > until) throw new Error(`fenceline model: the fleet did not settle within 120 s after a round`);
        await sleep(250);
      }
    }
    await kubeDone;

    const records = (node: string, from: number) =>
      fl.audit.filter((r) => r.node === node && r.at >= from - 50).sort((a, b) => a.seq - b.seq);
    const flOutcomes: CrashOutcome[] = flCrashes.map((c) => {
      const rs = records(c.node, c.crashedAt);
      const floor = rs.find((r) => r.timers.set["safe-time"] !== undefined)?.timers.set["safe-time"];
      const since = (r: AuditRecord | undefined) => (r ? Math.max(0, r.at - c.crashedAt) : null);
      const detectedAfterMs = since(rs.find((r) => r.event.type === "heartbeat.missed"));
      const fencedAfterMs = since(rs.find((r) => r.changed && r.from === "fencing"));
      const step = rs.find((r) => r.changed && r.to === "remediating.running");
      const recoveredAfterMs = c.recoveredAt === undefined ? null : c.recoveredAt - c.crashedAt;
      return {
        node: c.node,
        replica: c.replica,
        crashedAt: c.crashedAt,
        recoveredAfterMs,
        overFloorMs: c.recoveredAt === undefined || floor === undefined ? null : c.recoveredAt - floor,
        fencelineShareMs:
          floor === undefined || !step || c.evictedAt === undefined || c.goneAt === undefined
            ? null
            : Math.max(0, step.at - floor) + (c.goneAt - c.evictedAt),
        detectedAfterMs,
        fencedAfterMs,
        taintAfterMs: step ? step.at - c.crashedAt : null,
        evictedAfterMs: c.evictedAt === undefined ? null : c.evictedAt - c.crashedAt,
      };
    });
    const kubeOutcomes: CrashOutcome[] = kubeCrashes.map((c) => ({
      node: c.node,
      replica: c.replica,
      crashedAt: c.crashedAt,
      recoveredAfterMs: c.recoveredAt === undefined ? null : c.recoveredAt - c.crashedAt,
      evictedAfterMs: c.evictedAt === undefined ? null : c.evictedAt - c.crashedAt,
    }));
    const recovered = (os: CrashOutcome[]) => os.map((o) => o.recoveredAfterMs).filter((t): t is number => t !== null);
    const flViolations = fl.violations;
    const overFloor = stats(flOutcomes.map((o) => o.overFloorMs).filter((t): t is number => t !== null && t !== undefined));
    const share = stats(flOutcomes.map((o) => o.fencelineShareMs).filter((t): t is number => t !== null && t !== undefined));
    const evicted = stats(kubeOutcomes.map((o) => o.evictedAfterMs).filter((t): t is number => t !== null && t !== undefined));
    const models: RealModelSummary[] = [
      {
        name: "fenceline",
        ...stats(recovered(flOutcomes)),
        neverRecovered: flOutcomes.filter((o) => o.recoveredAfterMs === null).length,
        violations: flViolations.length,
        crashes: flOutcomes.length,
        safeTimeMs: safeTimeOf(policy),
        overFloorP50Ms: overFloor.p50Ms,
        overFloorP99Ms: overFloor.p99Ms,
        overFloorMaxMs: overFloor.maxMs,
        fencelineShareP50Ms: share.p50Ms,
        fencelineShareP99Ms: share.p99Ms,
      },
      {
        name: "kubernetes",
        ...stats(recovered(kubeOutcomes)),
        neverRecovered: kubeOutcomes.filter((o) => o.recoveredAfterMs === null).length,
        violations: kubeViolations.size,
        crashes: kubeOutcomes.length,
        evictedP50Ms: evicted.p50Ms,
        evictedMaxMs: evicted.maxMs,
      },
    ];
    return {
      kubernetesVersion: version,
      controlPlaneStartMs: cp ? cp.startup.totalMs : null,
      wallMs: Date.now() - started,
      horizonMs: options.horizonMs,
      models,
      outcomes: { fenceline: flOutcomes, kubernetes: kubeOutcomes },
      violations: { fenceline: flViolations, kubernetes: [...kubeViolations.values()] },
      policy,
    };
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    await cp?.stop();
  }
}
