import type { AuditRecord, Command, NodeEvent, NodeEventOf } from "@fenceline/contracts";
import { phaseOf } from "@fenceline/statecharts";
import { fold, type Decider, type FoldResult } from "./fold.js";
import type { NodeSnapshot } from "./snapshot.js";

/**
 * Replay: folds the recorded input history (FL_EVENTS) through the current code and policy,
 * from the first event, and compares every transition with the one recorded in FL_AUDIT. A
 * difference is a determinism violation: the code or the policy changed under recorded history
 * (Temporal's replayer, Pacemaker's crm_simulate). Pure: no I/O, no clock; the caller reads the
 * streams. It runs the very `fold` the engine runs, so a change in the machine shows here.
 */

/** One input event and its FL_EVENTS sequence. */
export type ReplayEvent = { event: NodeEvent; seq: number };

/** The part of a transition that replay compares, as recorded or as replayed. */
export type TransitionDigest = {
  at: number;
  event: { id: string; type: string };
  from: string;
  to: string;
  epoch: number;
  commands: Array<{ id: string; kind: string }>;
  timers: AuditRecord["timers"];
  reason: string | null;
  policyVersion: string;
};

export type DivergenceKind =
  /** Both have the transition, and they differ (`fields` says where). */
  | "changed"
  /** The event was applied by the replay but the audit has no record for it. */
  | "missing-record"
  /** The audit has a record for an event replay did not see (absent or invalid in FL_EVENTS). */
  | "unexpected-record";

export type Divergence = {
  kind: DivergenceKind;
  node: string;
  /** FL_EVENTS sequence of the input event. */
  seq: number;
  at: number;
  eventType: string;
  /** Fields that differ: from, to, epoch, commands, timers, reason, policyVersion, event, at. */
  fields: string[];
  recorded: TransitionDigest | null;
  replayed: TransitionDigest | null;
};

/** Picks the decider for an event from the policy version its audit record was written under. */
export type DeciderResolver = (recordedPolicyVersion: string | null) => Decider;

export type NodeStateAt = {
  node: string;
  /** State path, or "new" when the node had no event yet. */
  state: string;
  since: number | null;
  epoch: number;
  lastEvent: { seq: number; at: number; type: string } | null;
};

export type ReplayOptions = {
  decider: Decider | DeciderResolver;
  /** Also collect every node's state at this time (ms since the epoch). */
  at?: number;
  /** Also collect this node's replayed transitions and command results (see `nodeTimeline`). */
  node?: string;
  /** How many divergences to keep in the report (all are counted). Default 1000. */
  maxDivergences?: number;
};

export type ReplayReport = {
  ok: boolean;
  /** Events folded. */
  events: number;
  /** Events compared with an audit record. */
  compared: number;
  /** Events after the last audit record: not applied by the engine yet (its consumer lag). */
  pending: number;
  nodes: number;
  /** Transitions (state changes) replayed. */
  transitions: number;
  divergenceCount: number;
  /** The first `maxDivergences` divergences, in sequence order. */
  divergences: Divergence[];
  /** Per node: how many divergences, and the first one's sequence. */
  divergedNodes: Array<{ node: string; count: number; firstSeq: number }>;
  /** Policy versions the audit was written under, with counts, and those the replay used. */
  recordedPolicyVersions: Record<string, number>;
  replayPolicyVersions: Record<string, number>;
  /** Every node's replayed state now (after the last event). */
  final: NodeStateAt[];
  /** With `at`: every node's state at that time. */
  statesAt?: NodeStateAt[];
  /** With `node`: that node's replayed records and the results of its commands. */
  history?: { records: AuditRecord[]; results: CommandResultSeen[] };
};

export type CommandResultSeen = {
  commandId: string;
  kind: string;
  ok: boolean;
  reason: string | null;
  at: number;
  seq: number;
  eventId: string;
};

export function digestOf(r: AuditRecord): TransitionDigest {
  return {
    at: r.at,
    event: { id: r.event.id, type: r.event.type },
    from: r.from,
    to: r.to,
    epoch: r.epoch,
    commands: r.commands.map((c) => ({ id: c.id, kind: c.kind })),
    timers: r.timers,
    reason: r.reason ?? null,
    policyVersion: r.policyVersion,
  };
}

function sameCommand(a: Command, b: Command): boolean {
  if (a.id !== b.id || a.kind !== b.kind || a.epoch !== b.epoch || a.deadline !== b.deadline || a.issuedAt !== b.issuedAt) return false;
  return sameJson(a.params, b.params);
}

const NOT_PLAIN = Symbol("not plain");

/**
 * `JSON.stringify(a) === JSON.stringify(b)` without building the strings: plain data (strings,
 * finite numbers, booleans, null, arrays, plain objects with keys in the same order) is compared
 * member by member; anything else (undefined members, non-finite numbers, toJSON, class
 * instances…) falls back to comparing the strings.
 */
function sameJson(a: unknown, b: unknown): boolean {
  try {
    return samePlain(a, b);
  } catch (err) {
    if (err !== NOT_PLAIN) throw err;
    return JSON.stringify(a) === JSON.stringify(b);
  }
}

function samePlain(a: unknown, b: unknown): boolean {
  const ta = typeof a;
  if (ta !== typeof b) throw NOT_PLAIN;
  if (ta === "string" || ta === "boolean") return a === b;
  if (ta === "number") {
    if (!Number.isFinite(a as number) || !Number.isFinite(b as number)) throw NOT_PLAIN;
    return a === b;
  }
  if (ta !== "object") throw NOT_PLAIN;
  if (a === null || b === null) {
    if (a === b) return true;
    throw NOT_PLAIN;
  }
  if (Array.isArray(a)) {
    if (!Array.isArray(b)) throw NOT_PLAIN;
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!samePlain(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) throw NOT_PLAIN;
  const pa = Object.getPrototypeOf(a);
  const pb = Object.getPrototypeOf(b);
  if ((pa !== Object.prototype && pa !== null) || (pb !== Object.prototype && pb !== null)) throw NOT_PLAIN;
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  if (ka.length !== kb.length) throw NOT_PLAIN;
  for (let i = 0; i < ka.length; i++) {
    if (ka[i] !== kb[i]) throw NOT_PLAIN;
    if (!samePlain((a as Record<string, unknown>)[ka[i]!], (b as Record<string, unknown>)[kb[i]!])) return false;
  }
  return true;
}

function sameNumbers(a: Record<string, number>, b: Record<string, number>): boolean {
  let n = 0;
  for (const key in a) {
    if (a[key] !== b[key]) return false;
    n++;
  }
  for (const _ in b) n--;
  return n === 0;
}

function sameCommands(a: Command[], b: Command[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!sameCommand(a[i]!, b[i]!)) return false;
  return true;
}

function sameStrings(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Field names where a recorded transition and a replayed one differ (empty when equal). */
export function compareRecords(recorded: AuditRecord, replayed: AuditRecord): string[] {
  const fields: string[] = [];
  if (recorded.event.id !== replayed.event.id || recorded.event.type !== replayed.event.type) fields.push("event");
  if (recorded.at !== replayed.at) fields.push("at");
  if (recorded.from !== replayed.from) fields.push("from");
  if (recorded.to !== replayed.to) fields.push("to");
  if (recorded.epoch !== replayed.epoch) fields.push("epoch");
  const rc = recorded.commands;
  const pc = replayed.commands;
  if (!sameCommands(rc, pc)) fields.push("commands");
  const rt = recorded.timers;
  const pt = replayed.timers;
  if (!sameNumbers(rt.set, pt.set) || !sameStrings(rt.cleared, pt.cleared)) fields.push("timers");
  if ((recorded.reason ?? null) !== (replayed.reason ?? null)) fields.push("reason");
  if (recorded.policyVersion !== replayed.policyVersion) fields.push("policyVersion");
  return fields;
}

/**
 * `entered`: when the node entered its current top-level state, from the transitions (the
 * context's `since` is undefined while a node is still in its initial state: xstate's init
 * event has no time).
 */
const stateOf = (node: string, s: NodeSnapshot | undefined, last: NodeStateAt["lastEvent"], entered?: number): NodeStateAt => ({
  node,
  state: s ? s.path : "new",
  since: s ? (typeof s.context.since === "number" ? s.context.since : (entered ?? null)) : null,
  epoch: s ? s.context.epoch : 0,
  lastEvent: last,
});

const byNode = (a: { node: string }, b: { node: string }) => a.node.localeCompare(b.node, undefined, { numeric: true });

export type Replayer = {
  /**
   * Folds one event. `recorded` is the audit record written for it (compared), `null` when the
   * audit has none (a divergence) or `undefined` when it is not to be compared (not applied yet).
   */
  apply(event: NodeEvent, seq: number, recorded: AuditRecord | null | undefined): FoldResult;
  /** An audit record whose event the replay never saw. */
  unexpected(record: AuditRecord): void;
  /** Counts an event past the last audit record without folding it. */
  skipPending(): void;
  snapshot(node: string): NodeSnapshot | undefined;
  report(): ReplayReport;
};

/** The streaming core of replay: feed events in sequence order. */
export function createReplayer(options: ReplayOptions): Replayer {
  const resolve: DeciderResolver = typeof options.decider === "function" ? options.decider : () => options.decider as Decider;
  const deciders = new Map<string | null, Decider>();
  const deciderFor = (version: string | null): Decider => {
    let d = deciders.get(version);
    if (!d) {
      d = resolve(version);
      deciders.set(version, d);
    }
    return d;
  };
  const maxKept = options.maxDivergences ?? 1000;
  const snapshots = new Map<string, NodeSnapshot>();
  /** Each node's last event (its sequence is the snapshot's lastSeq). */
  const lastEvents = new Map<string, NodeEvent>();
  const lastEventOf = (node: string): NodeStateAt["lastEvent"] => {
    const event = lastEvents.get(node);
    return event ? { seq: snapshots.get(node)!.lastSeq, at: event.at, type: event.type } : null;
  };
  const entered = new Map<string, number>();
  const atTime = options.at;
  const statesAt = new Map<string, NodeStateAt>();
  const recordedVersions: Record<string, number> = {};
  const replayVersions: Record<string, number> = {};
  const divergences: Divergence[] = [];
  const diverged = new Map<string, { count: number; firstSeq: number }>();
  const history = options.node !== undefined ? { records: [] as AuditRecord[], results: [] as CommandResultSeen[] } : undefined;
  let events = 0;
  let compared = 0;
  let pending = 0;
  let transitions = 0;
  let divergenceCount = 0;
  let lastVersion: string | null = null;

  const diverge = (d: Divergence) => {
    divergenceCount++;
    if (divergences.length < maxKept) divergences.push(d);
    const seen = diverged.get(d.node);
    if (seen) seen.count++;
    else diverged.set(d.node, { count: 1, firstSeq: d.seq });
  };

  return {
    apply(event, seq, recorded) {
      events++;
      let version: string | null;
      if (recorded) {
        version = recorded.policyVersion;
        recordedVersions[version] = (recordedVersions[version] ?? 0) + 1;
        lastVersion = version;
      } else {
        version = lastVersion;
      }
      const decider = deciderFor(version);
      replayVersions[decider.policy.version] = (replayVersions[decider.policy.version] ?? 0) + 1;
      const result = fold(decider, snapshots.get(event.node) ?? null, event, seq);
      const { audit } = result;
      snapshots.set(event.node, result.snapshot);
      lastEvents.set(event.node, event);
      if (audit.changed) {
        transitions++;
        if (audit.from === "new" || phaseOf(audit.from) !== phaseOf(audit.to)) entered.set(event.node, event.at);
      }
      if (atTime !== undefined && event.at <= atTime)
        statesAt.set(event.node, stateOf(event.node, result.snapshot, { seq, at: event.at, type: event.type }, entered.get(event.node)));

      if (recorded) {
        compared++;
        const fields = recorded.node === audit.node ? compareRecords(recorded, audit) : ["node"];
        if (fields.length > 0) {
          diverge({
            kind: "changed",
            node: event.node,
            seq,
            at: event.at,
            eventType: event.type,
            fields,
            recorded: digestOf(recorded),
            replayed: digestOf(audit),
          });
        }
      } else if (recorded === null) {
        diverge({
          kind: "missing-record",
          node: event.node,
          seq,
          at: event.at,
          eventType: event.type,
          fields: [],
          recorded: null,
          replayed: digestOf(audit),
        });
      }

      if (history && event.node === options.node) {
        history.records.push(audit);
        if (event.type === "command.result") {
          const d = (event as NodeEventOf<"command.result">).data;
          history.results.push({
            commandId: d.commandId,
            kind: d.kind,
            ok: d.ok,
            reason: d.reason ?? null,
            at: event.at,
            seq,
            eventId: event.id,
          });
        }
      }
      return result;
    },
    unexpected(record) {
      recordedVersions[record.policyVersion] = (recordedVersions[record.policyVersion] ?? 0) + 1;
      diverge({
        kind: "unexpected-record",
        node: record.node,
        seq: record.seq,
        at: record.at,
        eventType: record.event.type,
        fields: [],
        recorded: digestOf(record),
        replayed: null,
      });
    },
    skipPending() {
      pending++;
    },
    snapshot: (node) => snapshots.get(node),
    report() {
      const nodes = [...snapshots.keys()];
      const report: ReplayReport = {
        ok: divergenceCount === 0,
        events,
        compared,
        pending,
        nodes: nodes.length,
        transitions,
        divergenceCount,
        divergences: [...divergences].sort((a, b) => a.seq - b.seq),
        divergedNodes: [...diverged].map(([node, d]) => ({ node, ...d })).sort((a, b) => a.firstSeq - b.firstSeq),
        recordedPolicyVersions: recordedVersions,
        replayPolicyVersions: replayVersions,
        final: nodes.map((n) => stateOf(n, snapshots.get(n), lastEventOf(n), entered.get(n))).sort(byNode),
      };
      if (atTime !== undefined) report.statesAt = nodes.map((n) => statesAt.get(n) ?? stateOf(n, undefined, null)).sort(byNode);
      if (history) report.history = history;
      return report;
    },
  };
}

/**
 * Replays a whole history. `events` in FL_EVENTS order; `audit` in any order. Events after the
 * last audit record are counted as pending (the engine has not applied them yet), not folded.
 * Audit records older than the first event (a truncated stream) are not compared.
 */
export function replay(events: Iterable<ReplayEvent>, audit: Iterable<AuditRecord>, options: ReplayOptions): ReplayReport {
  const recorded = new Map<number, AuditRecord>();
  let lastRecorded = 0;
  for (const r of audit) {
    recorded.set(r.seq, r);
    if (r.seq > lastRecorded) lastRecorded = r.seq;
  }
  const replayer = createReplayer(options);
  let firstSeq: number | null = null;
  for (const { event, seq } of events) {
    firstSeq ??= seq;
    if (seq > lastRecorded) {
      replayer.skipPending();
      continue;
    }
    const record = recorded.get(seq);
    replayer.apply(event, seq, record ?? null);
    if (record) recorded.delete(seq);
  }
  for (const r of [...recorded.values()].sort((a, b) => a.seq - b.seq)) {
    if (firstSeq === null || r.seq >= firstSeq) replayer.unexpected(r);
  }
  return replayer.report();
}
