import { describe, expect, it } from "vitest";
import {
  DEMO_POLICY,
  FENCING_TAINT,
  OUT_OF_SERVICE_TAINT,
  contractMeeting,
  createEvent,
  type NodeEvent,
  type NodeEventOf,
  type NodeEventType,
} from "@fenceline/contracts";
import { auditId, commandId, createDecider, fold, type FoldResult, type NodeSnapshot } from "../src/index.js";

/**
 * DEMO_POLICY: unhealthy for 2s → fencing; safe time 4s (1s + 0.5s + 1.5s + 1s); fence timeout
 * 10 min; command timeout 10s; Automatic then ResourceDeletion, 10s each.
 */
const decider = createDecider(DEMO_POLICY);
const NODE = "n1";

const ev = <T extends NodeEventType>(type: T, data: NodeEventOf<T>["data"], at: number, id = `${type}@${at}`): NodeEvent =>
  createEvent(type, { id, node: NODE, at, source: "test", data }) as NodeEvent;

/** n1 as first heard through its agent (at 500, event #1), with a contract that meets the policy. */
const KNOWN = fold(
  decider,
  null,
  ev("node.joined", { bootId: "b1", incarnation: 1, contract: contractMeeting(DEMO_POLICY) }, 500),
  1,
).snapshot;

/** Folds events with consecutive sequences from `firstSeq`; returns every step's result. */
function run(events: NodeEvent[], firstSeq = 10, prior: NodeSnapshot | null = KNOWN): FoldResult[] {
  const results: FoldResult[] = [];
  let snapshot = prior;
  events.forEach((event, i) => {
    const result = fold(decider, snapshot, event, firstSeq + i);
    results.push(result);
    snapshot = result.snapshot;
  });
  return results;
}

/**
 * n1 misses heartbeats (last seen 1000) at 2000, its suspect timer fires at 3000, the slot is
 * granted at 3100, the safe time passes at 5000 (the guard is asked again), the guard answers a
 * healthy majority since 0 at 5050, Kubernetes 1.30 at 5100.
 */
const toRunning: NodeEvent[] = [
  ev("heartbeat.missed", { lastSeenAt: 1_000, bootId: "b1" }, 2_000),
  ev("timer.fired", { timer: "suspect", due: 3_000 }, 3_000),
  ev("command.result", { commandId: "cmd:n1:11:0", kind: "slot.acquire", epoch: 0, ok: true }, 3_100),
  ev("timer.fired", { timer: "safe-time", due: 5_000 }, 5_000),
  ev("command.result", { commandId: "cmd:n1:13:0", kind: "slot.acquire", epoch: 1, ok: true, facts: { majoritySince: 0 } }, 5_050),
  ev("command.result", { commandId: "cmd:n1:14:0", kind: "cluster.version", epoch: 1, ok: true, facts: { serverVersion: "1.30" } }, 5_100),
];

describe("fold", () => {
  it("is pure and deterministic: the same input gives deep-equal output and the prior is not mutated", () => {
    const first = run(toRunning);
    const second = run(toRunning);
    expect(second).toEqual(first);

    const prior = first[1]!.snapshot;
    const frozen = structuredClone(prior);
    const event = toRunning[2]!;
    const a = fold(decider, prior, event, 12);
    const b = fold(decider, prior, event, 12);
    expect(b).toEqual(a);
    expect(prior).toEqual(frozen);
    // A decider built from the same policy decides the same.
    expect(fold(createDecider(DEMO_POLICY), frozen, event, 12)).toEqual(a);
  });

  it('starts an unknown node from the initial state and reports it as coming from "new"', () => {
    const [r] = run([toRunning[0]!], 10, null);
    expect(r!.audit).toMatchObject({ from: "new", to: "suspect.waiting", changed: true, epoch: 0, seq: 10, node: NODE });
    expect(r!.snapshot).toMatchObject({
      v: 1,
      node: NODE,
      path: "suspect.waiting",
      lastSeq: 10,
      policyVersion: "demo-1",
      updatedAt: 2_000,
    });
    expect(r!.snapshot.context.node).toBe(NODE);
    expect(r!.snapshot.context.signals).toEqual({ heartbeat: 1_000 });

    // A first event that changes nothing still starts from the initial state.
    const joined = fold(decider, null, ev("node.joined", { bootId: "b1", incarnation: 1 }, 500), 1);
    expect(joined.audit).toMatchObject({ from: "new", to: "healthy", changed: true, commands: [], timers: { set: {}, cleared: [] } });
    expect(joined.audit).not.toHaveProperty("reason");
  });

  it("derives command and audit ids from the node and the event's sequence", () => {
    const results = run(toRunning, 10);
    expect(results.map((r) => r.audit.id)).toEqual([10, 11, 12, 13, 14, 15].map((seq) => `audit:n1:${seq}`));
    expect(results.map((r) => r.commands.map((c) => c.id))).toEqual([
      [],
      ["cmd:n1:11:0"],
      ["cmd:n1:12:0", "cmd:n1:12:1"],
      ["cmd:n1:13:0"],
      ["cmd:n1:14:0"],
      ["cmd:n1:15:0", "cmd:n1:15:1"],
    ]);
    expect(commandId("a.b", 7, 2)).toBe("cmd:a.b:7:2");
    expect(auditId("a.b", 7)).toBe("audit:a.b:7");
    for (const r of results) for (const c of r.commands) expect(c.causedBy).toBe(r.audit.seq);

    // Another sequence for the same event: other ids, same decisions.
    const moved = run(toRunning, 110);
    expect(moved[2]!.commands.map((c) => c.id)).toEqual(["cmd:n1:112:0", "cmd:n1:112:1"]);
    expect(moved[2]!.commands.map((c) => c.kind)).toEqual(results[2]!.commands.map((c) => c.kind));
  });

  it("gives commands the epoch after the transition and a deadline", () => {
    const results = run(toRunning);
    const [, requesting, fencing, , , running] = results;
    // Before fencing the epoch is 0.
    expect(requesting!.commands).toEqual([
      expect.objectContaining({
        kind: "slot.acquire",
        epoch: 0,
        issuedAt: 3_000,
        deadline: 3_000 + 10_000,
        causedBy: 11,
        params: { controlPlane: false, membershipVersion: 1 },
      }),
    ]);
    // The grant starts fencing: the prior snapshot said epoch 0, the commands carry epoch 1.
    expect(results[1]!.snapshot.context.epoch).toBe(0);
    expect(fencing!.commands).toEqual([
      expect.objectContaining({
        v: 1,
        node: NODE,
        kind: "taint.add",
        epoch: 1,
        issuedAt: 3_100,
        deadline: 13_100,
        params: { taint: FENCING_TAINT },
      }),
      expect.objectContaining({ kind: "watchdog.stop", epoch: 1, deadline: 13_100, params: { reason: "fencing epoch 1", bootId: "b1" } }),
    ]);
    expect(fencing!.audit.epoch).toBe(1);
    // A command with its own timeout gets at least that timeout + 5s.
    expect(running!.commands).toEqual([
      expect.objectContaining({ kind: "taint.add", epoch: 1, deadline: 5_100 + 10_000, params: { taint: OUT_OF_SERVICE_TAINT } }),
      expect.objectContaining({ kind: "workloads.await-gone", epoch: 1, deadline: 5_100 + 15_000, params: { timeoutMs: 10_000 } }),
    ]);
    for (const r of results) for (const c of r.commands) expect(c.deadline).toBeGreaterThan(c.issuedAt);
  });

  it("writes an audit record with from, to, changed, timers set and cleared, reason and policy version", () => {
    const [missed, requesting, fencing, checking, resolving, running] = run(toRunning);
    expect(missed!.audit).toEqual({
      v: 1,
      id: "audit:n1:10",
      node: NODE,
      seq: 10,
      at: 2_000,
      event: { id: "heartbeat.missed@2000", type: "heartbeat.missed", source: "test" },
      from: "healthy",
      to: "suspect.waiting",
      changed: true,
      epoch: 0,
      commands: [],
      timers: { set: { suspect: 3_000 }, cleared: [] },
      reason: "unhealthy since 1000 (heartbeat); fencing after 2s",
      policyVersion: "demo-1",
    });
    expect(requesting!.audit).toMatchObject({
      from: "suspect.waiting",
      to: "suspect.requestingSlot",
      changed: true,
      timers: { set: {}, cleared: ["suspect"] },
    });
    expect(requesting!.audit).not.toHaveProperty("reason");
    expect(requesting!.audit.commands).toEqual(requesting!.commands);

    expect(fencing!.audit).toMatchObject({
      from: "suspect.requestingSlot",
      to: "fencing",
      changed: true,
      epoch: 1,
      timers: { set: { "fence-timeout": 3_100 + 600_000, "safe-time": 5_000 }, cleared: [] },
      policyVersion: "demo-1",
    });
    expect(fencing!.audit.reason).toBe("fencing, epoch 1; silent since 1000: assumed fenced at 5000 (safe time 4s)");

    expect(checking!.audit).toMatchObject({ from: "fencing", to: "fencing", changed: false, timers: { set: {}, cleared: ["safe-time"] } });
    expect(checking!.commands.map((c) => c.kind)).toEqual(["slot.acquire"]);
    expect(resolving!.audit).toMatchObject({ from: "fencing", to: "remediating.resolving", timers: { set: { "step-timeout": 15_050 } } });
    expect([...resolving!.audit.timers.cleared].sort()).toEqual(["fence-timeout"]);
    expect(resolving!.audit.reason).toBe("fencing confirmed: safe time: silent for 4s with a healthy majority since 0");

    expect(running!.audit).toMatchObject({
      from: "remediating.resolving",
      to: "remediating.running",
      timers: { set: { "step-timeout": 15_100 }, cleared: [] },
    });
    expect(running!.audit.reason).toBe(
      "Automatic: Kubernetes 1.30 → OutOfServiceTaint; remediation step 1/2: OutOfServiceTaint (timeout 10s)",
    );
  });

  it("records an event that changes nothing as unchanged, with the reason", () => {
    const [, requesting] = run(toRunning.slice(0, 2));
    // A stale timer (wrong due) is ignored.
    const stale = fold(decider, requesting!.snapshot, ev("timer.fired", { timer: "suspect", due: 1 }, 3_050), 12);
    expect(stale.audit).toMatchObject({
      from: "suspect.requestingSlot",
      to: "suspect.requestingSlot",
      changed: false,
      commands: [],
      timers: { set: {}, cleared: [] },
    });
    expect(stale.snapshot.lastSeq).toBe(12);
    expect(stale.snapshot.value).toEqual(requesting!.snapshot.value);
    // A result for another kind is only explained.
    const other = fold(
      decider,
      requesting!.snapshot,
      ev("command.result", { commandId: "x", kind: "taint.add", epoch: 0, ok: false, reason: "boom" }, 3_060),
      13,
    );
    expect(other.audit).toMatchObject({ changed: false, reason: "taint.add failed: boom" });
  });
});
