import type { AuditRecord } from "@fenceline/contracts";
import type { CommandResultSeen, ReplayEvent } from "@fenceline/engine";
import { phaseOf } from "@fenceline/statecharts";

// Each node's timeline as the visualizer and `fenceline replay --node` show it: a read model
// joined from FL_AUDIT and the command results in FL_EVENTS.

/** The command results (command.result events) among events, by command id. */
export function commandResultsOf(events: Iterable<ReplayEvent>): CommandResultSeen[] {
  const out: CommandResultSeen[] = [];
  for (const { event, seq } of events) {
    if (event.type !== "command.result") continue;
    const d = event.data;
    out.push({ commandId: d.commandId, kind: d.kind, ok: d.ok, reason: d.reason ?? null, at: event.at, seq, eventId: event.id });
  }
  return out;
}

export type TimelineCommand = {
  id: string;
  kind: string;
  epoch: number;
  issuedAt: number;
  deadline: number;
  params: unknown;
  /** The first result for this command (null while none arrived). */
  result: { ok: boolean; reason: string | null; at: number; seq: number; latencyMs: number } | null;
};

export type TimelineEntry = {
  seq: number;
  at: number;
  event: AuditRecord["event"];
  from: string;
  to: string;
  changed: boolean;
  epoch: number;
  reason: string | null;
  commands: TimelineCommand[];
  /** When this event answered a command: which one. */
  resultOf: string | null;
  policyVersion: string;
};

export type StateStay = {
  state: string;
  enteredAt: number;
  /** Null while the node is still in it. */
  leftAt: number | null;
  durationMs: number;
  /** Sequence of the event that moved the node into this state. */
  enteredBySeq: number;
};

export type NodeTimeline = {
  node: string;
  entries: TimelineEntry[];
  /** Each stay in a state (full path), in order. */
  stays: StateStay[];
  /** Total time per top-level state. */
  timeInState: Record<string, number>;
  /** Entries with a state change. */
  transitions: number;
};

/**
 * A node's timeline: every record with the event that caused it, the commands it emitted with
 * their results (joined on the command id), and the time spent in each state. `now` closes the
 * current stay (default: the last record's time).
 */
export function nodeTimeline(node: string, records: AuditRecord[], results: CommandResultSeen[], now?: number): NodeTimeline {
  const sorted = records.filter((r) => r.node === node).sort((a, b) => a.seq - b.seq);
  const firstResult = new Map<string, CommandResultSeen>();
  const resultByEvent = new Map<string, CommandResultSeen>();
  for (const r of [...results].sort((a, b) => a.seq - b.seq)) {
    if (!firstResult.has(r.commandId)) firstResult.set(r.commandId, r);
    resultByEvent.set(r.eventId, r);
  }
  const entries: TimelineEntry[] = sorted.map((r) => ({
    seq: r.seq,
    at: r.at,
    event: r.event,
    from: r.from,
    to: r.to,
    changed: r.changed,
    epoch: r.epoch,
    reason: r.reason ?? null,
    commands: r.commands.map((c) => {
      const res = firstResult.get(c.id);
      return {
        id: c.id,
        kind: c.kind,
        epoch: c.epoch,
        issuedAt: c.issuedAt,
        deadline: c.deadline,
        params: c.params,
        result: res ? { ok: res.ok, reason: res.reason, at: res.at, seq: res.seq, latencyMs: res.at - c.issuedAt } : null,
      };
    }),
    resultOf: r.event.type === "command.result" ? (resultByEvent.get(r.event.id)?.commandId ?? null) : null,
    policyVersion: r.policyVersion,
  }));
  const end = now ?? sorted.at(-1)?.at ?? 0;
  const stays: StateStay[] = [];
  for (const r of sorted) {
    if (!r.changed && stays.length > 0) continue;
    const open = stays.at(-1);
    if (open && open.leftAt === null) {
      open.leftAt = r.at;
      open.durationMs = r.at - open.enteredAt;
    }
    stays.push({ state: r.to, enteredAt: r.at, leftAt: null, durationMs: Math.max(0, end - r.at), enteredBySeq: r.seq });
  }
  const timeInState: Record<string, number> = {};
  for (const s of stays) timeInState[phaseOf(s.state)] = (timeInState[phaseOf(s.state)] ?? 0) + s.durationMs;
  return { node, entries, stays, timeInState, transitions: sorted.filter((r) => r.changed).length };
}
