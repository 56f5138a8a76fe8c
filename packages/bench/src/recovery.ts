import { DEFAULT_POLICY, safeTimeOf } from "@fenceline/contracts";
import {
  BENCH_BMC_DEVICES,
  KUBERNETES_DEFAULTS,
  NHC_UNHEALTHY_MS,
  REAL_BMC_TIMING,
  RECOVERY_MODELS,
  recoveryCases,
  runRecoveryCase,
  snrSafeTimeMs,
  summarize,
  type RecoveryOutcome,
  type RecoverySummary,
} from "@fenceline/sim";
import { humanOutput, intOption, parseBench, printJson, table, UsageError } from "@fenceline/command-line";
import { runRealRecoveryBench, type CrashOutcome, type RealModelSummary } from "./recovery-kubernetes.js";

const USAGE = `usage: fenceline bench recovery [--cases N] [--seed S] [--horizon MINUTES] [--json]
       fenceline bench recovery --kubernetes real [--cases N] [--kubernetes-cases N] [--nodes N]
                                [--concurrent K] [--horizon MINUTES] [--kubeconfig FILE] [--json]

Without --kubernetes real (a model: the simulated cluster, on a virtual clock):
Crashes a machine running a StatefulSet replica, N times (different fleets, timings, and a
return after 1–20 min in half the cases, never in the others), and measures the time from the
crash to the replica running again under four models, side by side on the same simulated
cluster and virtual clock:
  fenceline    the real engine, detector, actuators and agents with the default policy
               (watchdog only: the safe time)
  fenceline-power  the same, with IPMI as the first fencing level ([ipmi], then [watchdog]):
               every machine's BMC simulated with fence_ipmilan's output and a server BMC's
               latencies; the power-off read back is the proof
  kubernetes   no remediator: node-monitor-grace-period 50 s + 300 s toleration; a StatefulSet
               pod stays Terminating until its node returns
  nhc-snr      Node Health Check + Self Node Remediation defaults: Ready=Unknown after 50 s,
               300 s unhealthy condition, then SNR's computed safe time (180 s), then the
               out-of-service taint
Prints a table; with --json the table goes to stderr and stdout is one JSON document,
{ "models": [ { "name", "p50Ms", "p99Ms", "maxMs", "neverRecovered", "violations" } ] }.
  --cases N          how many crashes (default 50)
  --seed S           seed of the cases (default 1)
  --horizon MINUTES  a workload not running again by then never recovered (default 30)

With --kubernetes real: a real Kubernetes 1.37 control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, built from Go modules on first use; kube-lab) with
simulated kubelets and a CSI attacher, on the wall clock. Hard crashes of machines running a
StatefulSet replica with a ReadWriteOnce CSI volume, measured from the crash to the replacement
pod Running and Ready on another node, two models side by side on the same control plane:
  fenceline    the engine, detectors, fleet guard, actuators (through the API server) and the
               agents over a local nats-server, default policy; crashes in rounds of K
               concurrent machines, which boot again and rejoin after each round
  kubernetes   no remediator: node lifecycle controller, taint eviction (300 s default
               tolerations), StatefulSet controller; each crash in a zone of its own (3 nodes),
               the machine stays down. A StatefulSet pod on an unreachable node is never
               replaced unless someone force-deletes it: expect "never"
The invariants (no replica, no ReadWriteOnce volume active on two machines) are checked on the
machines' ground truth every 25 ms. With --json the table goes to stderr and the last stdout
line is { "kubernetesVersion", "models": [ { "name", "p50Ms", "p99Ms", "maxMs", "neverRecovered",
"violations", "crashes", ... } ], "controlPlaneStartMs", "wallMs", "horizonMs" }
(fenceline adds "safeTimeMs" and "overFloorP50Ms", "overFloorP99Ms", "overFloorMaxMs": recovery
after the safety floor, the safe time after the last heartbeat, and "fencelineShareP50Ms",
"fencelineShareP99Ms": Fenceline's own part of it, the floor to the out-of-service taint plus the
evicted pod to its force-delete (the rest is the taint eviction, StatefulSet, scheduler and
attach-detach controllers, the last polling a VolumeAttachment every 0.5 s on detach and on
attach, and the kubelet); kubernetes adds "evictedP50Ms",
"evictedMaxMs": when the taint eviction controller marked the pod for deletion).
  --cases N             fenceline crashes (default 24)
  --kubernetes-cases N  kubernetes crashes, all at once (default 4)
  --nodes N             the fenceline fleet (default 12)
  --concurrent K        fenceline crashes per round (default 4; the fleet guard needs a
                        healthy majority, and K spare nodes take the replacements)
  --horizon MINUTES     a replica not back by then never recovered (default 7: past the 50 s
                        grace period + 300 s toleration); decimals allowed
  --kubeconfig FILE     use this control plane (admin credentials) instead of starting one`;

const int = (value: unknown, name: string, fallback: number, min: number) => intOption(value, name, fallback, min, USAGE);

const range = ([min, max]: [number, number]) => `${min / 1000}–${max / 1000}`;

const secs = (ms: number | null) => (ms === null ? "-" : ms >= 120_000 ? `${(ms / 60_000).toFixed(1)} min` : `${(ms / 1000).toFixed(1)} s`);

/** `fenceline bench recovery`: returns the exit code (1 when a model broke an invariant). */
export async function benchRecovery(argv: string[]): Promise<number> {
  const values = parseBench(
    argv,
    "recovery",
    {
      cases: { type: "string" },
      seed: { type: "string" },
      horizon: { type: "string" },
      json: { type: "boolean" },
      kubernetes: { type: "string" },
      "kubernetes-cases": { type: "string" },
      nodes: { type: "string" },
      concurrent: { type: "string" },
      kubeconfig: { type: "string" },
    },
    USAGE,
  );
  if (!values) return 0;
  if (values.kubernetes !== undefined && values.kubernetes !== "real" && values.kubernetes !== "model") {
    throw new UsageError(`--kubernetes must be "real" or "model", got "${values.kubernetes}"\n\n${USAGE}`);
  }
  if (values.kubernetes === "real") return benchRecoveryReal(values);
  for (const only of ["kubernetes-cases", "nodes", "concurrent", "kubeconfig"] as const) {
    if (values[only] !== undefined) throw new UsageError(`--${only} needs --kubernetes real\n\n${USAGE}`);
  }
  const count = int(values.cases, "cases", 50, 1);
  const seed = int(values.seed, "seed", 1, 0);
  const horizonMs = int(values.horizon, "horizon", 30, 1) * 60_000;
  const started = Date.now();

  const cases = recoveryCases(count, seed);
  const summaries: RecoverySummary[] = [];
  const details: Record<string, RecoveryOutcome[]> = {};
  for (const model of RECOVERY_MODELS) {
    const outcomes: RecoveryOutcome[] = [];
    for (const c of cases) outcomes.push(await runRecoveryCase(model, c, { horizonMs }));
    details[model] = outcomes;
    summaries.push(summarize(model, outcomes));
  }

  const returning = cases.filter((c) => c.returnsAfterMs !== null).length;
  const lines = [
    `${count} hard crashes of a machine running a StatefulSet replica (${returning} come back after 1–20 min, ${count - returning} never), horizon ${horizonMs / 60_000} min, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    "",
    table(
      summaries.map((s) => [s.name, secs(s.p50Ms), secs(s.p99Ms), secs(s.maxMs), `${s.neverRecovered}/${s.cases}`, String(s.violations)]),
      ["MODEL", "P50", "P99", "MAX", "NEVER RECOVERED", "VIOLATIONS"],
    ),
    "",
    `fenceline:  default policy: heartbeat timeout ${DEFAULT_POLICY.heartbeat.timeoutMs / 1000} s, unhealthy ${DEFAULT_POLICY.unhealthyDurationMs / 1000} s, safe time ${safeTimeOf(DEFAULT_POLICY) / 1000} s from the last heartbeat, then the out-of-service taint`,
    `fenceline-power: the same detection, then fence_ipmilan through a BMC (${range(REAL_BMC_TIMING.sessionMs)} s per IPMI session, power off ${range(REAL_BMC_TIMING.powerOffMs)} s after the command, agent start ${range(REAL_BMC_TIMING.agentStartMs)} s; ${BENCH_BMC_DEVICES.devices.ipmi!.retries} retries, read back every ${BENCH_BMC_DEVICES.devices.ipmi!.pollMs / 1000} s), remediation as soon as the power-off is read back; the machine is powered on again after`,
    `kubernetes: evicted after ${KUBERNETES_DEFAULTS.nodeMonitorGracePeriodMs / 1000} s + ${KUBERNETES_DEFAULTS.tolerationSeconds} s; the StatefulSet pod stays Terminating until the node returns`,
    `nhc-snr:    Ready=Unknown after ${KUBERNETES_DEFAULTS.nodeMonitorGracePeriodMs / 1000}–${(KUBERNETES_DEFAULTS.nodeMonitorGracePeriodMs + KUBERNETES_DEFAULTS.leaseRenewMs + KUBERNETES_DEFAULTS.nodeMonitorPeriodMs) / 1000} s, NHC ${NHC_UNHEALTHY_MS / 1000} s, SNR safe time ${snrSafeTimeMs(5) / 1000} s (3×(15+5) + max(30, batches×(5+7)) + 60 + 30), then the out-of-service taint`,
    "times exclude image pulls and volume attach latency, alike for every model",
  ];
  humanOutput(values.json).write(`${lines.join("\n")}\n`);
  for (const [model, outcomes] of Object.entries(details)) {
    for (const o of outcomes) for (const v of o.violations) process.stderr.write(`${model} case ${o.caseId} (${o.node}): ${v}\n`);
  }
  if (values.json) {
    const models = summaries.map(({ name, p50Ms, p99Ms, maxMs, neverRecovered, violations }) => ({
      name,
      p50Ms,
      p99Ms,
      maxMs,
      neverRecovered,
      violations,
    }));
    printJson({ models });
  }
  return summaries.some((s) => s.violations > 0) ? 1 : 0;
}

/** `--kubernetes real`: the two models on a real control plane (bench/recovery-kubernetes.ts). */
async function benchRecoveryReal(values: Record<string, unknown>): Promise<number> {
  const cases = int(values.cases, "cases", 24, 1);
  const kubernetesCases = int(values["kubernetes-cases"], "kubernetes-cases", 4, 1);
  const nodes = int(values.nodes, "nodes", 12, 3);
  const concurrent = int(values.concurrent, "concurrent", 4, 1);
  const seed = int(values.seed, "seed", 1, 0);
  const horizon = values.horizon === undefined ? 7 : Number(values.horizon);
  if (!(horizon > 0)) throw new UsageError(`--horizon must be a positive number of minutes\n\n${USAGE}`);
  if (2 * concurrent > nodes)
    throw new UsageError(
      `--concurrent ${concurrent} needs at least ${2 * concurrent} nodes (a healthy majority and a spare node per replica)\n\n${USAGE}`,
    );
  const out = humanOutput(values.json as boolean | undefined);
  const r = await runRealRecoveryBench({
    cases,
    kubernetesCases,
    nodes,
    concurrent,
    seed,
    horizonMs: Math.round(horizon * 60_000),
    ...(values.kubeconfig ? { kubeconfig: values.kubeconfig as string } : {}),
    progress: (line) => process.stderr.write(`${line}\n`),
  });
  const [fl, k8s] = r.models as [RealModelSummary, RealModelSummary];
  const never = (s: RealModelSummary) => (s.neverRecovered === s.crashes ? "never" : secs(s.p50Ms));
  const lines = [
    `Kubernetes ${r.kubernetesVersion} (real control plane${r.controlPlaneStartMs === null ? ", given" : `, ready in ${(r.controlPlaneStartMs / 1000).toFixed(1)} s`}), hard crashes of machines running a StatefulSet replica (ReadWriteOnce CSI volume), horizon ${(r.horizonMs / 60_000).toFixed(1)} min, ${(r.wallMs / 1000).toFixed(0)} s in all`,
    "",
    table(
      r.models.map((s) => [
        s.name,
        String(s.crashes),
        s === k8s ? never(s) : secs(s.p50Ms),
        secs(s.p99Ms),
        secs(s.maxMs),
        `${s.neverRecovered}/${s.crashes}`,
        String(s.violations),
      ]),
      ["MODEL", "CRASHES", "P50", "P99", "MAX", "NEVER RECOVERED", "VIOLATIONS"],
    ),
    "",
    `fenceline:  policy ${r.policy.version}: heartbeat timeout ${r.policy.heartbeat.timeoutMs / 1000} s, safe time ${Number(fl.safeTimeMs) / 1000} s from the last heartbeat; above that floor: p50 ${secs(fl.overFloorP50Ms as number | null)}, p99 ${secs(fl.overFloorP99Ms as number | null)}, max ${secs(fl.overFloorMaxMs as number | null)} (target ≤ 1 s), of which Fenceline's own (floor to the out-of-service taint, and the evicted pod to force-deleted) p50 ${secs(fl.fencelineShareP50Ms as number | null)}, p99 ${secs(fl.fencelineShareP99Ms as number | null)}, the rest the controllers' (taint eviction, StatefulSet, scheduler, attach-detach, kubelet); ${concurrent} crashes at a time in a fleet of ${nodes}`,
    `kubernetes: StatefulSet pod marked for deletion after ${secs(k8s.evictedP50Ms as number | null)} (p50; 50 s grace + 300 s toleration); then Terminating on the dead node until it returns: ${k8s.neverRecovered} of ${k8s.crashes} never replaced within the horizon`,
  ];
  out.write(`${lines.join("\n")}\n`);
  const ms = (v: number | null | undefined) => (v === null || v === undefined ? "-" : `${(v / 1000).toFixed(2)} s`);
  const detail = (o: CrashOutcome) =>
    `  ${o.node} ${o.replica}: ${o.recoveredAfterMs === null ? "never back" : `back after ${secs(o.recoveredAfterMs)}`}` +
    (o.detectedAfterMs !== undefined
      ? `, detected ${ms(o.detectedAfterMs)}, fencing confirmed ${ms(o.fencedAfterMs)}, out-of-service taint ${ms(o.taintAfterMs)}, pod marked for deletion ${ms(o.evictedAfterMs)}; floor +${ms(o.overFloorMs)} (Fenceline's share ${ms(o.fencelineShareMs)})`
      : `, pod marked for deletion after ${secs(o.evictedAfterMs ?? null)}`);
  process.stderr.write(`\nper crash:\n${[...r.outcomes.fenceline, ...r.outcomes.kubernetes].map(detail).join("\n")}\n`);
  for (const [model, vs] of Object.entries(r.violations))
    for (const v of vs) process.stderr.write(`${model}: ${v.invariant}: ${v.detail}\n`);
  if (values.json) {
    printJson({
      kubernetesVersion: r.kubernetesVersion,
      models: r.models,
      controlPlaneStartMs: r.controlPlaneStartMs,
      wallMs: r.wallMs,
      horizonMs: r.horizonMs,
    });
  }
  return r.models.some((s) => s.violations > 0) ? 1 : 0;
}
