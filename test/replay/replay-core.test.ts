import { describe, expect, it } from "vitest";
import { DEFAULT_POLICY, Policy, type AuditRecord } from "@fenceline/contracts";
import { createDecider, replay, type ReplayEvent } from "@fenceline/engine";
import { commandResultsOf, nodeTimeline } from "@fenceline/read-model";
import { HistoryGenerator } from "@fenceline/testing";
import { benchReplay } from "@fenceline/bench";

/** A small generated history: 30 nodes, 6000 events, with the audit the engine would write. */
const cache = new Map<number, ReturnType<typeof generate>>();
function history(count = 6_000) {
  if (!cache.has(count)) cache.set(count, generate(count));
  return cache.get(count)!;
}
function generate(count: number) {
  const items = new HistoryGenerator({ nodes: 30, seed: 7, incidentEveryMs: 60_000 }).next(count);
  const events: ReplayEvent[] = items.map(({ event, seq }) => ({ event, seq }));
  const audit: AuditRecord[] = items.map((i) => i.audit);
  return { items, events, audit };
}

const decider = createDecider(DEFAULT_POLICY);

describe("replay core", () => {
  it("an untouched history replays with no divergence, every event compared", () => {
    const { events, audit } = history();
    const r = replay(events, audit, { decider });
    expect(r.ok).toBe(true);
    expect(r.events).toBe(events.length);
    expect(r.compared).toBe(events.length);
    expect(r.divergenceCount).toBe(0);
    expect(r.nodes).toBe(30);
    expect(r.transitions).toBeGreaterThan(500);
    // The generated history goes through the whole lifecycle.
    const states = new Set(audit.map((a) => a.to.split(".")[0]));
    for (const s of ["healthy", "suspect", "fencing", "remediating", "rejoining", "paused"]) expect(states).toContain(s);
  });

  it("a changed transition is reported with the node, the sequence, the fields and both versions", () => {
    const { events, audit } = history();
    const i = audit.findIndex((a) => a.changed && a.to.startsWith("fencing"));
    const tampered = audit.map((a, j) => (j === i ? { ...a, to: "healthy", commands: [] } : a));
    const r = replay(events, tampered, { decider });
    expect(r.ok).toBe(false);
    expect(r.divergenceCount).toBe(1);
    const d = r.divergences[0]!;
    expect(d).toMatchObject({ kind: "changed", node: audit[i]!.node, seq: audit[i]!.seq, fields: ["to", "commands"] });
    expect(d.recorded).toMatchObject({ to: "healthy", commands: [], policyVersion: "1" });
    expect(d.replayed!.to).toMatch(/^fencing/);
    expect(d.replayed!.commands.map((c) => c.kind)).toContain("taint.add");
    expect(r.divergedNodes).toEqual([{ node: audit[i]!.node, count: 1, firstSeq: audit[i]!.seq }]);
  });

  it("a missing record, a record without its event and pending events are told apart", () => {
    const { events, audit } = history(2_000);
    const missing = audit[100]!;
    // The last ten events have no record yet (the engine's lag): pending, not divergent.
    const r = replay(
      events,
      audit.slice(0, -10).filter((a) => a !== missing),
      { decider },
    );
    expect(r.pending).toBe(10);
    expect(r.divergences.map((d) => `${d.kind}@${d.seq}`)).toEqual([`missing-record@${missing.seq}`]);
    expect(r.divergences[0]).toMatchObject({ node: missing.node, recorded: null, replayed: { to: missing.to } });
    // A record whose event is not in FL_EVENTS (or was invalid there).
    const gone = replay(
      events.filter((e) => e.seq !== 300),
      audit,
      { decider },
    );
    expect(gone.divergences.map((d) => `${d.kind}@${d.seq}`)).toContain("unexpected-record@300");
  });

  it("a policy changed under the same version diverges; another version is visible in every record", () => {
    const { events, audit } = history();
    const changed = createDecider(Policy.parse({ unhealthyDurationMs: 6_000 }));
    const r = replay(events, audit, { decider: changed });
    expect(r.ok).toBe(false);
    expect(r.divergences[0]!.fields).toContain("timers");
    expect(r.recordedPolicyVersions).toEqual({ "1": events.length });

    const renamed = createDecider(Policy.parse({ version: "2" }));
    const v = replay(events, audit, { decider: renamed });
    expect(v.divergenceCount).toBe(events.length);
    expect(v.divergences[0]).toMatchObject({
      fields: ["policyVersion"],
      recorded: { policyVersion: "1" },
      replayed: { policyVersion: "2" },
    });
    expect(v.replayPolicyVersions).toEqual({ "2": events.length });
  });

  it("gives every node's state at a time and one node's history with command results", () => {
    const { events, audit } = history();
    const fenced = audit.find((a) => a.changed && a.to === "fencing")!;
    const r = replay(events, audit, { decider, at: fenced.at, node: fenced.node });
    expect(r.statesAt).toHaveLength(30);
    expect(r.statesAt!.find((s) => s.node === fenced.node)).toMatchObject({ state: "fencing", since: fenced.at, epoch: fenced.epoch });
    const before = replay(events, audit, { decider, at: events[0]!.event.at - 1 });
    expect(before.statesAt!.every((s) => s.state === "new")).toBe(true);

    const { records, results } = r.history!;
    expect(records.every((x) => x.node === fenced.node)).toBe(true);
    const timeline = nodeTimeline(fenced.node, records, results);
    const fencing = timeline.entries.find((e) => e.seq === fenced.seq)!;
    expect(fencing.commands.map((c) => c.kind)).toContain("taint.add");
    const taint = fencing.commands.find((c) => c.kind === "taint.add")!;
    expect(taint.result).toMatchObject({ ok: true });
    expect(taint.result!.latencyMs).toBeGreaterThanOrEqual(0);
    expect(timeline.entries.some((e) => e.resultOf === taint.id)).toBe(true);
    // Stays chain up and the time in each state adds up to the span.
    for (let i = 1; i < timeline.stays.length; i++) expect(timeline.stays[i - 1]!.leftAt).toBe(timeline.stays[i]!.enteredAt);
    const span = timeline.entries.at(-1)!.at - timeline.stays[0]!.enteredAt;
    expect(Object.values(timeline.timeInState).reduce((a, b) => a + b, 0)).toBe(span);
    // The same join works from recorded audit records and the raw events (what the UI does).
    const fromAudit = nodeTimeline(fenced.node, audit, commandResultsOf(events.filter((e) => e.event.node === fenced.node)));
    expect(fromAudit.entries).toEqual(timeline.entries);
  });

  it("the benchmark replays a generated history with both interpreters, side by side, with no divergence, and reports their rates", () => {
    const r = benchReplay({ events: 20_000, nodes: 200, chunk: 5_000, interpreters: ["xstate", "fast"] });
    expect(r.events).toBe(20_000);
    expect(r.divergences).toBe(0);
    expect(r.runs.map((run) => [run.interpreter, run.divergences])).toEqual([
      ["xstate", 0],
      ["fast", 0],
    ]);
    for (const run of r.runs) expect(run.eventsPerSec).toBeGreaterThan(0);
  });
});
