import type { AuditRecord } from "./types";

/** The fleet as the audit says it was at a time: a fold over `to` per node. Pure. */

export const PHASES = ["healthy", "suspect", "fencing", "remediating", "rejoining", "paused", "operator"] as const;

export const phaseOf = (path: string) => path.split(".")[0]!;

export type NodeView = {
  node: string;
  /** State path, or "new" before the node's first event. */
  state: string;
  /** When it entered this state (path), null before its first event. */
  since: number | null;
  epoch: number;
  last: AuditRecord | null;
};

const byName = (a: string, b: string) => a.localeCompare(b, undefined, { numeric: true });

/** Every node known to the records (and `extra` names), at time `t` (records in sequence order). */
export function fleetAt(records: AuditRecord[], t: number, extra: Iterable<string> = []): NodeView[] {
  const views = new Map<string, NodeView>();
  for (const name of extra) views.set(name, { node: name, state: "new", since: null, epoch: 0, last: null });
  for (const r of records) if (!views.has(r.node)) views.set(r.node, { node: r.node, state: "new", since: null, epoch: 0, last: null });
  for (const r of records) {
    if (r.at > t) continue;
    const v = views.get(r.node)!;
    if (v.last && v.last.seq > r.seq) continue;
    if (r.changed || v.state === "new") v.since = r.at;
    v.state = r.to;
    v.epoch = r.epoch;
    v.last = r;
  }
  return [...views.values()].sort((a, b) => byName(a.node, b.node));
}

/** How many nodes are in each state path and in each of its ancestors. */
export function countByState(views: NodeView[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const v of views) {
    if (v.state === "new") continue;
    const parts = v.state.split(".");
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join(".");
      counts.set(p, (counts.get(p) ?? 0) + 1);
    }
  }
  return counts;
}

export type Series = { times: number[]; counts: Record<string, number[]>; max: number };

/** Nodes per top-level state sampled at `columns` times over [from, to] (a sweep in time order). */
export function fleetSeries(records: AuditRecord[], from: number, to: number, columns: number): Series {
  const sorted = [...records].sort((a, b) => a.at - b.at || a.seq - b.seq);
  const current = new Map<string, string>();
  const tally = new Map<string, number>();
  const counts: Record<string, number[]> = {};
  for (const p of PHASES) counts[p] = [];
  const times: number[] = [];
  let i = 0;
  let max = 0;
  const span = Math.max(1, to - from);
  for (let c = 0; c < columns; c++) {
    const t = from + (span * c) / Math.max(1, columns - 1);
    while (i < sorted.length && sorted[i]!.at <= t) {
      const r = sorted[i++]!;
      const before = current.get(r.node);
      const after = phaseOf(r.to);
      if (before !== after) {
        if (before) tally.set(before, (tally.get(before) ?? 1) - 1);
        tally.set(after, (tally.get(after) ?? 0) + 1);
        current.set(r.node, after);
      }
    }
    times.push(t);
    let total = 0;
    for (const p of PHASES) {
      const n = tally.get(p) ?? 0;
      counts[p]!.push(n);
      total += n;
    }
    max = Math.max(max, total);
  }
  return { times, counts, max };
}
