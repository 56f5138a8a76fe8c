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
import { humanOutput, intOption, parseBench, printJson, table } from "@fenceline/command-line";

const USAGE = `usage: fenceline bench recovery [--cases N] [--seed S] [--horizon MINUTES] [--json]

Crashes a machine running a StatefulSet replica, N times (different fleets, timings, and a
return after 1–20 min in half the cases, never in the others), and measures the time from the
crash to the replica running again under three models, side by side on the same simulated
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
  --horizon MINUTES  a workload not running again by then never recovered (default 30)`;

const int = (value: unknown, name: string, fallback: number, min: number) => intOption(value, name, fallback, min, USAGE);

const range = ([min, max]: [number, number]) => `${min / 1000}–${max / 1000}`;

const secs = (ms: number | null) => (ms === null ? "-" : ms >= 120_000 ? `${(ms / 60_000).toFixed(1)} min` : `${(ms / 1000).toFixed(1)} s`);

/** `fenceline bench recovery`: returns the exit code (1 when a model broke an invariant). */
export async function benchRecovery(argv: string[]): Promise<number> {
  const values = parseBench(argv, "recovery", { cases: { type: "string" }, seed: { type: "string" }, horizon: { type: "string" }, json: { type: "boolean" } }, USAGE);
  if (!values) return 0;
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
    const models = summaries.map(({ name, p50Ms, p99Ms, maxMs, neverRecovered, violations }) => ({ name, p50Ms, p99Ms, maxMs, neverRecovered, violations }));
    printJson({ models });
  }
  return summaries.some((s) => s.violations > 0) ? 1 : 0;
}
