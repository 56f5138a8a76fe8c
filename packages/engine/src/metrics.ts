import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { AuditRecord, Guarantee, NodeEvent } from "@fenceline/contracts";
import { NODE_STATES, phaseOf } from "@fenceline/statecharts";
import type { FoldResult } from "./fold.js";
import type { NodeSnapshot } from "./snapshot.js";

/** The Prometheus text exposition format prom-client writes. */
export const PROMETHEUS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/** How the fleet guard sees the fleet now (the control plane's fleet view and budget). */
export type FleetStatus = {
  fleetSize: number;
  healthy: number;
  /** Remediation slots held (FL_FLEET budget). */
  slotsUsed: number;
  /** Slots the policy allows for this fleet size (`remediationSlotsAllowed`). */
  slotsAllowed: number;
};

/** Buckets for the lifecycle durations: seconds to tens of minutes. */
const EPISODE_BUCKETS = [1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 300, 600, 1800];

/**
 * Fenceline's metrics (prom-client), fed by what the engine applies (`onApplied`, or audit
 * records read from FL_AUDIT), by the events it sees (command results), by periodic stream and
 * consumer info, and — where the control plane runs — by the fleet guard's view and the NATS
 * connection. docs/visualizer.md lists them all.
 */
export type FencelineMetrics = ReturnType<typeof createFencelineMetrics>;

/** A node's current state as its snapshot in FL_NODES says (`observeSnapshot`). */
export type SnapshotState = {
  node: string;
  path: string;
  since: number;
  hostGroup?: string;
  /** Its fencing guarantee as the engine last recorded it (snapshots written before it: none). */
  guarantee?: { guarantee: Guarantee; weak: boolean };
};

const GUARANTEES: readonly Guarantee[] = ["watchdog", "power", "none"];

export function createFencelineMetrics(
  options: {
    registry?: Registry;
    fleet?: () => FleetStatus | Promise<FleetStatus>;
    natsConnected?: () => boolean;
    /**
     * The event partitions this process's engine instance owns, and how many there are: the
     * alert "an engine partition without an owner" compares their sums over instances.
     */
    partitions?: () => { owned: number; total: number } | null;
    /**
     * Where nodes per state and each node's state-since come from: the audit records this
     * process sees (`observeAudit`, the default: the UI server reads them all), or the snapshots
     * in FL_NODES (`observeSnapshot`: an engine instance applies only its partitions' events,
     * and a partition it handed over would leave stale series behind).
     */
    states?: "audit" | "snapshots";
  } = {},
) {
  const fromAudit = (options.states ?? "audit") === "audit";
  const registry = options.registry ?? new Registry();
  const registers = [registry];
  const nodes = new Gauge({
    name: "fenceline_nodes",
    help: "Nodes per top-level lifecycle state (every state present, 0 included).",
    labelNames: ["state"],
    registers,
  });
  const stateSince = new Gauge({
    name: "fenceline_node_state_since_timestamp_seconds",
    help: "When each node entered its current top-level lifecycle state (Unix time, seconds); one series per node, labelled with that state.",
    labelNames: ["node", "state"],
    registers,
  });
  const byGuarantee = new Gauge({
    name: "fenceline_nodes_by_guarantee",
    help: "Nodes of the fleet (forgotten ones left out) per fencing guarantee: watchdog (its agent's contract lets the engine assume it fenced by the safe time), power (a power-fencing level covers it), none (only a new boot id or an operator proves it fenced).",
    labelNames: ["guarantee"],
    registers,
  });
  const weakContract = new Gauge({
    name: "fenceline_agent_contract_weak",
    help: "1 while a node's agent reports a fencing contract weaker than the policy (a software or untrusted watchdog, looser timing, no membership view), else 0; one series per node.",
    labelNames: ["node"],
    registers,
  });
  const transitions = new Counter({
    name: "fenceline_transitions_total",
    help: "State changes applied, by from and to state path.",
    labelNames: ["from", "to"],
    registers,
  });
  const applied = new Counter({
    name: "fenceline_events_applied_total",
    help: "Events applied by the engine, by event type.",
    labelNames: ["type"],
    registers,
  });
  const remediation = new Histogram({
    name: "fenceline_remediation_duration_seconds",
    help: "From a node leaving healthy to its return to healthy, for episodes that fenced or re-provisioned it (not a suspicion that cleared); by node pool (host group).",
    labelNames: ["pool"],
    buckets: EPISODE_BUCKETS,
    registers,
  });
  const toFence = new Histogram({
    name: "fenceline_time_to_fence_seconds",
    help: "From a node leaving healthy to its fencing being confirmed (it leaves fencing for remediating or rejoining); by node pool.",
    labelNames: ["pool"],
    buckets: EPISODE_BUCKETS,
    registers,
  });
  const toRemediate = new Histogram({
    name: "fenceline_time_to_remediate_seconds",
    help: "From a node leaving healthy to the end of its remediation (it leaves remediating); by node pool.",
    labelNames: ["pool"],
    buckets: EPISODE_BUCKETS,
    registers,
  });
  const toRejoin = new Histogram({
    name: "fenceline_time_to_rejoin_seconds",
    help: "From a node entering rejoining to its return to healthy; by node pool.",
    labelNames: ["pool"],
    buckets: EPISODE_BUCKETS,
    registers,
  });
  const issued = new Counter({
    name: "fenceline_commands_issued_total",
    help: "Commands emitted by the engine, by kind.",
    labelNames: ["kind"],
    registers,
  });
  const latency = new Histogram({
    name: "fenceline_command_duration_seconds",
    help: "From a command being issued to its result event, by kind.",
    labelNames: ["kind"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  });
  const results = new Counter({
    name: "fenceline_command_results_total",
    help: "Command results, by kind and result (ok or failed).",
    labelNames: ["kind", "result"],
    registers,
  });
  const failures = new Counter({
    name: "fenceline_command_failures_total",
    help: "Commands that failed or were refused, by kind.",
    labelNames: ["kind"],
    registers,
  });
  const refusals = new Counter({
    name: "fenceline_fleet_guard_refusals_total",
    help: "Remediation slots the fleet guard refused (slot.acquire results with ok=false).",
    registers,
  });
  const lag = new Gauge({
    name: "fenceline_consumer_lag_messages",
    help: "Messages not yet delivered to a durable consumer (num_pending, summed over the engine's partitions), by stream and consumer.",
    labelNames: ["stream", "consumer"],
    registers,
  });
  const ackPending = new Gauge({
    name: "fenceline_consumer_ack_pending_messages",
    help: "Messages delivered to a durable consumer but not acknowledged yet, by stream and consumer.",
    labelNames: ["stream", "consumer"],
    registers,
  });
  const dlq = new Gauge({ name: "fenceline_dlq_messages", help: "Messages in the dead-letter stream FL_DLQ.", registers });
  const lastApplied = new Gauge({
    name: "fenceline_last_applied_event_sequence",
    help: "FL_EVENTS sequence of the last event applied.",
    registers,
  });

  if (options.natsConnected) {
    const connected = options.natsConnected;
    new Gauge({
      name: "fenceline_nats_connected",
      help: "1 while this process is connected to NATS, 0 while it is disconnected or reconnecting.",
      registers,
      collect() {
        this.set(connected() ? 1 : 0);
      },
    });
  }
  if (options.partitions) {
    const partitions = options.partitions;
    new Gauge({
      name: "fenceline_engine_partitions_owned",
      help: "Event partitions (FL_EVENTS consumers engine-<p>) this engine instance owns now; summed over instances it equals fenceline_engine_partitions when every partition has an owner.",
      registers,
      collect() {
        const p = partitions();
        if (p) this.set(p.owned);
      },
    });
    new Gauge({
      name: "fenceline_engine_partitions",
      help: "Event partitions FL_EVENTS is split into (the same on every instance).",
      registers,
      collect() {
        const p = partitions();
        if (p) this.set(p.total);
      },
    });
  }
  let fleetRead: Promise<FleetStatus | null> | null = null;
  if (options.fleet) {
    const fleet = options.fleet;
    // prom-client collects every metric of a scrape at once: the five gauges share one read,
    // made anew for each scrape (`render` forgets the last one).
    const read = () =>
      (fleetRead ??= Promise.resolve()
        .then(fleet)
        .catch(() => null));
    const gauge = (name: string, help: string, value: (s: FleetStatus) => number) =>
      new Gauge({
        name,
        help,
        registers,
        async collect() {
          const status = await read();
          // NaN (unknown) when the fleet could not be read: no alert compares true on it.
          this.set(status ? value(status) : Number.NaN);
        },
      });
    gauge("fenceline_fleet_nodes", "Nodes the fleet guard counts (the fleet size its limits are computed from).", (s) => s.fleetSize);
    gauge("fenceline_fleet_healthy_nodes", "Nodes the fleet guard counts as healthy and alive (heartbeating).", (s) => s.healthy);
    gauge(
      "fenceline_fleet_healthy_majority",
      "1 while more than half of the fleet is healthy and alive, else 0 (no node is fenced on the safe time without one).",
      (s) => (s.healthy * 2 > s.fleetSize ? 1 : 0),
    );
    gauge(
      "fenceline_remediation_slots_used",
      "Remediation slots held by nodes (FL_FLEET budget), shared by every engine instance.",
      (s) => s.slotsUsed,
    );
    gauge(
      "fenceline_remediation_slots_allowed",
      "Remediation slots the policy allows for the current fleet size (maxUnhealthy and minHealthy).",
      (s) => s.slotsAllowed,
    );
  }

  const stateOf = new Map<string, { seq: number; phase: string; since: number }>();
  const hostGroups = new Map<string, string>();
  /** The current unhealthy episode of each node: since when, whether it acted, when rejoining began. */
  const episodes = new Map<string, { since: number; acted: boolean; rejoiningSince: number | null }>();
  /** Commands waiting for their result: issue time and kind (forgotten after their deadline). */
  const open = new Map<string, { issuedAt: number; kind: string; deadline: number }>();
  const earlyResults = new Map<string, { at: number; ok: boolean; kind: string }>();
  let maxSeq = 0;

  for (const s of NODE_STATES) nodes.set({ state: s }, 0);
  const guarantees = new Map<string, { guarantee: Guarantee; weak: boolean }>();
  for (const g of GUARANTEES) byGuarantee.set({ guarantee: g }, 0);
  const recountGuarantees = () => {
    const counts = new Map<Guarantee, number>(GUARANTEES.map((g) => [g, 0]));
    for (const { guarantee } of guarantees.values()) counts.set(guarantee, (counts.get(guarantee) ?? 0) + 1);
    for (const [guarantee, n] of counts) byGuarantee.set({ guarantee }, n);
  };
  /** A node's guarantee (undefined: none recorded); a forgotten node is out of the fleet. */
  const trackGuarantee = (node: string, phase: string, g: SnapshotState["guarantee"]) => {
    if (phase === "forgotten") {
      guarantees.delete(node);
      weakContract.remove({ node });
    } else {
      const value = g ?? { guarantee: "none" as const, weak: false };
      guarantees.set(node, value);
      weakContract.set({ node }, value.weak ? 1 : 0);
    }
    recountGuarantees();
  };
  const recount = () => {
    const counts = new Map<string, number>(NODE_STATES.map((s) => [s, 0]));
    for (const { phase } of stateOf.values()) counts.set(phase, (counts.get(phase) ?? 0) + 1);
    for (const [state, n] of counts) nodes.set({ state }, n);
  };
  const track = (node: string, next: { seq: number; phase: string; since: number }) => {
    const prev = stateOf.get(node);
    if (prev && prev.phase !== next.phase) stateSince.remove({ node, state: prev.phase });
    stateOf.set(node, next);
    stateSince.set({ node, state: next.phase }, next.since / 1000);
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
    lastApplied.set(maxSeq);
    const prev = stateOf.get(r.node);
    if (fromAudit && (!prev || r.seq > prev.seq)) {
      const phase = phaseOf(r.to);
      track(r.node, { seq: r.seq, phase, since: prev && prev.phase === phase ? prev.since : r.at });
      recount();
    }
    if (r.changed) {
      transitions.inc({ from: r.from, to: r.to });
      const from = phaseOf(r.from);
      const to = phaseOf(r.to);
      const pool = { pool: hostGroups.get(r.node) ?? "default" };
      if ((from === "healthy" || from === "new") && to !== "healthy")
        episodes.set(r.node, { since: r.at, acted: false, rejoiningSince: null });
      const ep = episodes.get(r.node);
      if (ep && (to === "fencing" || to === "rejoining" || to === "remediating")) ep.acted = true;
      if (ep && from === "fencing" && (to === "remediating" || to === "rejoining")) toFence.observe(pool, (r.at - ep.since) / 1000);
      if (ep && from === "remediating" && to !== "remediating") toRemediate.observe(pool, (r.at - ep.since) / 1000);
      if (ep && to === "rejoining" && from !== "rejoining") ep.rejoiningSince = r.at;
      if (to === "healthy" && ep) {
        if (ep.acted) remediation.observe(pool, (r.at - ep.since) / 1000);
        if (ep.rejoiningSince !== null && from === "rejoining") toRejoin.observe(pool, (r.at - ep.rejoiningSince) / 1000);
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
        trackGuarantee(s.node, phaseOf(s.path), s.context.guarantee);
        const prev = stateOf.get(s.node);
        if (fromAudit && (!prev || s.lastSeq > prev.seq)) track(s.node, { seq: s.lastSeq, phase: phaseOf(s.path), since: s.context.since });
      }
      recount();
    },
    /** A node's snapshot as written to FL_NODES (with `states: "snapshots"`; the KV watch's order is the truth). */
    observeSnapshot(s: SnapshotState) {
      if (s.hostGroup) hostGroups.set(s.node, s.hostGroup);
      trackGuarantee(s.node, phaseOf(s.path), s.guarantee);
      if (fromAudit) return;
      const phase = phaseOf(s.path);
      const prev = stateOf.get(s.node);
      track(s.node, { seq: 0, phase, since: prev && prev.phase === phase ? prev.since : s.since });
      recount();
    },
    /** A node removed from FL_NODES. */
    forgetNode(node: string) {
      trackGuarantee(node, "forgotten", undefined);
      const prev = stateOf.get(node);
      if (!prev) return;
      stateSince.remove({ node, state: prev.phase });
      stateOf.delete(node);
      recount();
    },
    setConsumerInfo(stream: string, consumer: string, info: { pending: number; ackPending: number }) {
      lag.set({ stream, consumer }, info.pending);
      ackPending.set({ stream, consumer }, info.ackPending);
    },
    setDeadLetters(count: number) {
      dlq.set(count);
    },
    /** The text exposition format. */
    render: () => {
      fleetRead = null;
      return registry.metrics();
    },
  };
}
