import type { AuditRecord, NodeEvent } from "@fenceline/contracts";
import { NODE_STATES, phaseOf } from "@fenceline/statecharts";
import type { FoldResult } from "./fold.js";
import type { NodeSnapshot } from "./snapshot.js";

/**
 * A tiny Prometheus registry (text exposition format 0.0.4), no dependency: counters, gauges
 * and histograms with labels. Enough for Fenceline's own metrics.
 */

type Labels = Record<string, string>;

const escape = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
const keyOf = (labels: Labels) =>
  Object.keys(labels)
    .sort()
    .map((k) => `${k}="${escape(labels[k]!)}"`)
    .join(",");
const fmt = (v: number) => (Number.isFinite(v) ? String(v) : v > 0 ? "+Inf" : v < 0 ? "-Inf" : "NaN");

abstract class Metric {
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  abstract readonly type: string;
  abstract lines(): string[];
}

export class Counter extends Metric {
  readonly type = "counter";
  private readonly values = new Map<string, number>();
  inc(labels: Labels = {}, by = 1) {
    const k = keyOf(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels: Labels = {}) {
    return this.values.get(keyOf(labels)) ?? 0;
  }
  lines() {
    return [...this.values].map(([k, v]) => `${this.name}${k ? `{${k}}` : ""} ${fmt(v)}`);
  }
}

export class Gauge extends Metric {
  readonly type = "gauge";
  private readonly values = new Map<string, number>();
  set(labels: Labels, value: number) {
    this.values.set(keyOf(labels), value);
  }
  get(labels: Labels = {}) {
    return this.values.get(keyOf(labels));
  }
  lines() {
    return [...this.values].map(([k, v]) => `${this.name}${k ? `{${k}}` : ""} ${fmt(v)}`);
  }
}

export class Histogram extends Metric {
  readonly type = "histogram";
  private readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(
    name: string,
    help: string,
    readonly buckets: number[],
  ) {
    super(name, help);
  }
  observe(labels: Labels, value: number) {
    const k = keyOf(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }
  count(labels: Labels = {}) {
    return this.series.get(keyOf(labels))?.count ?? 0;
  }
  lines() {
    const out: string[] = [];
    for (const [k, s] of this.series) {
      const sep = k ? "," : "";
      this.buckets.forEach((b, i) => out.push(`${this.name}_bucket{${k}${sep}le="${fmt(b)}"} ${s.counts[i]}`));
      out.push(`${this.name}_bucket{${k}${sep}le="+Inf"} ${s.count}`);
      out.push(`${this.name}_sum${k ? `{${k}}` : ""} ${fmt(s.sum)}`);
      out.push(`${this.name}_count${k ? `{${k}}` : ""} ${s.count}`);
    }
    return out;
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];
  private add<M extends Metric>(m: M): M {
    if (this.metrics.some((x) => x.name === m.name)) throw new Error(`metric ${m.name} registered twice`);
    this.metrics.push(m);
    return m;
  }
  counter(name: string, help: string) {
    return this.add(new Counter(name, help));
  }
  gauge(name: string, help: string) {
    return this.add(new Gauge(name, help));
  }
  histogram(name: string, help: string, buckets: number[]) {
    return this.add(new Histogram(name, help, [...buckets].sort((a, b) => a - b)));
  }
  /** The text exposition format. */
  render(): string {
    return `${this.metrics
      .map((m) => [`# HELP ${m.name} ${m.help.replace(/\n/g, " ")}`, `# TYPE ${m.name} ${m.type}`, ...m.lines()].join("\n"))
      .join("\n")}\n`;
  }
}

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * Fenceline's metrics, fed by what the engine applies (`onApplied`, or audit records read from
 * FL_AUDIT), by the events it sees (command results) and by periodic stream and consumer info.
 */
export type FencelineMetrics = ReturnType<typeof createFencelineMetrics>;

export function createFencelineMetrics(options: { registry?: Registry } = {}) {
  const registry = options.registry ?? new Registry();
  const nodes = registry.gauge("fenceline_nodes", "Nodes per top-level lifecycle state.");
  const transitions = registry.counter("fenceline_transitions_total", "State changes applied, by from and to state path.");
  const applied = registry.counter("fenceline_events_applied_total", "Events applied by the engine, by event type.");
  const remediation = registry.histogram(
    "fenceline_remediation_duration_seconds",
    "From a node leaving healthy to its return to healthy, for episodes that fenced or re-provisioned it (not a suspicion that cleared); by node pool (host group).",
    [1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 300, 600, 1800],
  );
  const issued = registry.counter("fenceline_commands_issued_total", "Commands emitted by the engine, by kind.");
  const latency = registry.histogram(
    "fenceline_command_duration_seconds",
    "From a command being issued to its result event, by kind.",
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  );
  const results = registry.counter("fenceline_command_results_total", "Command results, by kind and result (ok or failed).");
  const failures = registry.counter("fenceline_command_failures_total", "Commands that failed or were refused, by kind.");
  const refusals = registry.counter("fenceline_fleet_guard_refusals_total", "Remediation slots the fleet guard refused (slot.acquire results with ok=false).");
  const lag = registry.gauge("fenceline_consumer_lag_messages", "Messages not yet delivered to a durable consumer (num_pending), by stream and consumer.");
  const ackPending = registry.gauge("fenceline_consumer_ack_pending_messages", "Messages delivered to a durable consumer but not acknowledged yet.");
  const dlq = registry.gauge("fenceline_dlq_messages", "Messages in the dead-letter stream FL_DLQ.");
  const lastApplied = registry.gauge("fenceline_last_applied_event_sequence", "FL_EVENTS sequence of the last event applied.");

  const stateOf = new Map<string, { seq: number; phase: string }>();
  const hostGroups = new Map<string, string>();
  const episodes = new Map<string, { since: number; acted: boolean }>();
  /** Commands waiting for their result: issue time and kind (forgotten after their deadline). */
  const open = new Map<string, { issuedAt: number; kind: string; deadline: number }>();
  const earlyResults = new Map<string, { at: number; ok: boolean; kind: string }>();
  let maxSeq = 0;

  for (const s of NODE_STATES) nodes.set({ state: s }, 0);
  const recount = () => {
    const counts = new Map<string, number>(NODE_STATES.map((s) => [s, 0]));
    for (const { phase } of stateOf.values()) counts.set(phase, (counts.get(phase) ?? 0) + 1);
    for (const [state, n] of counts) nodes.set({ state }, n);
  };

  const observeResult = (commandId: string, kind: string, ok: boolean, at: number) => {
    results.inc({ kind, result: ok ? "ok" : "failed" });
    if (!ok) failures.inc({ kind });
    if (kind === "slot.acquire" && !ok) refusals.inc();
    const cmd = open.get(commandId);
    if (cmd) {
      latency.observe({ kind }, Math.max(0, at - cmd.issuedAt) / 1000);
      open.delete(commandId);
    } else if (earlyResults.size < 10_000) {
      // The result was seen before the command (two subscriptions race): match it later.
      earlyResults.set(commandId, { at, ok, kind });
    }
  };

  function observeAudit(r: AuditRecord, hostGroup?: string) {
    if (hostGroup) hostGroups.set(r.node, hostGroup);
    applied.inc({ type: r.event.type });
    maxSeq = Math.max(maxSeq, r.seq);
    lastApplied.set({}, maxSeq);
    const prev = stateOf.get(r.node);
    if (!prev || r.seq > prev.seq) {
      stateOf.set(r.node, { seq: r.seq, phase: phaseOf(r.to) });
      recount();
    }
    if (r.changed) {
      transitions.inc({ from: r.from, to: r.to });
      const from = phaseOf(r.from);
      const to = phaseOf(r.to);
      if ((from === "healthy" || from === "new") && to !== "healthy") episodes.set(r.node, { since: r.at, acted: false });
      const ep = episodes.get(r.node);
      if (ep && (to === "fencing" || to === "rejoining" || to === "remediating")) ep.acted = true;
      if (to === "healthy" && ep) {
        if (ep.acted) remediation.observe({ pool: hostGroups.get(r.node) ?? "default" }, (r.at - ep.since) / 1000);
        episodes.delete(r.node);
      }
    }
    for (const c of r.commands) {
      issued.inc({ kind: c.kind });
      const early = earlyResults.get(c.id);
      if (early) {
        earlyResults.delete(c.id);
        latency.observe({ kind: c.kind }, Math.max(0, early.at - c.issuedAt) / 1000);
      } else {
        open.set(c.id, { issuedAt: c.issuedAt, kind: c.kind, deadline: c.deadline });
      }
    }
    if (open.size > 50_000) for (const [id, c] of open) if (c.deadline < r.at) open.delete(id);
  }

  return {
    registry,
    /** The engine's `onApplied` hook. */
    onApplied(result: FoldResult) {
      observeAudit(result.audit, result.snapshot.context.hostGroup);
    },
    observeAudit,
    /** Every event on FL_EVENTS: command results give latency, failures and guard refusals. */
    observeEvent(event: NodeEvent) {
      if (event.type === "command.result") observeResult(event.data.commandId, event.data.kind, event.data.ok, event.at);
    },
    /** Known snapshots (at start): nodes per state and pools before any new event. */
    seed(snapshots: NodeSnapshot[]) {
      for (const s of snapshots) {
        hostGroups.set(s.node, s.context.hostGroup);
        const prev = stateOf.get(s.node);
        if (!prev || s.lastSeq > prev.seq) stateOf.set(s.node, { seq: s.lastSeq, phase: phaseOf(s.path) });
      }
      recount();
    },
    setConsumerInfo(stream: string, consumer: string, info: { pending: number; ackPending: number }) {
      lag.set({ stream, consumer }, info.pending);
      ackPending.set({ stream, consumer }, info.ackPending);
    },
    setDeadLetters(count: number) {
      dlq.set({}, count);
    },
    render: () => registry.render(),
  };
}
