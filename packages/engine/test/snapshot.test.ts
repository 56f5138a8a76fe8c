import { describe, expect, it } from "vitest";
import { DEMO_POLICY, createEvent, isFencelineError, type NodeEvent } from "@fenceline/contracts";
import { createDecider, fold, parseSnapshot, type NodeSnapshot } from "../src/index.js";

const decider = createDecider(DEMO_POLICY);

/** A real snapshot: n1 silent, fenced by a reboot, rejoining. */
function snapshotAfterReboot(): NodeSnapshot {
  const events: NodeEvent[] = [
    createEvent("node.joined", { id: "e1", node: "n1", at: 1_000, source: "t", data: { bootId: "b1", incarnation: 1 } }),
    createEvent("heartbeat.missed", { id: "e2", node: "n1", at: 3_000, source: "t", data: { lastSeenAt: 2_000, bootId: "b1" } }),
    createEvent("timer.fired", { id: "e3", node: "n1", at: 4_000, source: "t", data: { timer: "suspect", due: 4_000 } }),
    createEvent("command.result", {
      id: "e4",
      node: "n1",
      at: 5_100,
      source: "t",
      data: { commandId: "c", kind: "slot.acquire", epoch: 0, ok: true, facts: { majoritySince: 0 } },
    }),
    createEvent("boot.changed", { id: "e5", node: "n1", at: 6_000, source: "t", data: { previousBootId: "b1", bootId: "b2" } }),
  ];
  let snapshot: NodeSnapshot | null = null;
  events.forEach((e, i) => (snapshot = fold(decider, snapshot, e, i + 1).snapshot));
  return snapshot!;
}

describe("node snapshots read back from FL_NODES", () => {
  it("parse what the engine writes, unchanged", () => {
    const snapshot = snapshotAfterReboot();
    expect(snapshot.context.fence.confirmedBy).toEqual({ by: "reboot", bootIdAtFencing: "b1", bootId: "b2" });
    expect(parseSnapshot("n1", JSON.stringify(snapshot))).toEqual(snapshot);
  });

  it("upgrade the sentence the previous release kept in confirmedBy to its variant", () => {
    const snapshot = snapshotAfterReboot();
    const legacy = (confirmedBy: string, extra: Partial<NodeSnapshot["context"]> = {}) =>
      JSON.stringify({
        ...snapshot,
        context: { ...snapshot.context, ...extra, fence: { ...snapshot.context.fence, confirmedBy, watchdogStopAckedAt: 5_200 } },
      });
    const read = (text: string) => parseSnapshot("n1", text).context.fence.confirmedBy;
    expect(read(legacy("reboot: boot id b1 → b2"))).toEqual({ by: "reboot", bootIdAtFencing: "b1", bootId: "b2" });
    expect(read(legacy("reboot: boot id null → b2"))).toEqual({ by: "reboot", bootIdAtFencing: null, bootId: "b2" });
    expect(read(legacy("fence agent: powered off"))).toEqual({ by: "power", device: null });
    expect(read(legacy("watchdog stop acknowledged and its timeout passed"))).toEqual({ by: "watchdog", ackedAt: 5_200, resetBy: null });
    expect(read(legacy("safe time: silent for 4s with a healthy majority throughout", { lastSeenAt: 2_000, majoritySince: 0 }))).toEqual({
      by: "safe-time",
      lastSeenAt: 2_000,
      majoritySince: 0,
    });
  });

  it("give a snapshot written before fencing levels their start: level 0, nothing tried, no unfencing yet", () => {
    const snapshot = snapshotAfterReboot();
    const { level: _l, poweredOff: _p, devices: _d, toPowerOn: _t, timeProof: _tp, failed: _f, ...before } = snapshot.context.fence;
    const { unfenceAttempt: _u, ...context } = snapshot.context;
    const read = parseSnapshot("n1", JSON.stringify({ ...snapshot, context: { ...context, fence: before } }));
    expect(read.context.fence).toEqual({ ...before, level: 0, poweredOff: [], devices: [], toPowerOn: [], timeProof: null, failed: [] });
    expect(read.context.unfenceAttempt).toBe(0);
  });

  it("refuse anything else, naming the key and every problem", () => {
    const snapshot = snapshotAfterReboot();
    const bad: Array<[string, string]> = [
      ["{not json", "is not JSON"],
      [JSON.stringify({ ...snapshot, lastSeq: -1 }), "lastSeq"],
      [
        JSON.stringify({
          ...snapshot,
          context: { ...snapshot.context, fence: { ...snapshot.context.fence, confirmedBy: "because I said so" } },
        }),
        "confirmedBy",
      ],
      [
        JSON.stringify({
          ...snapshot,
          context: { ...snapshot.context, fence: { ...snapshot.context.fence, confirmedBy: { by: "hope" } } },
        }),
        "confirmedBy",
      ],
      [JSON.stringify({ ...snapshot, context: { ...snapshot.context, epoch: "1", slot: "yes" } }), "slot"],
      [JSON.stringify({ ...snapshot, surprise: 1 }), "surprise"],
    ];
    for (const [text, mentions] of bad) {
      let error: unknown;
      try {
        parseSnapshot("n1", text);
      } catch (err) {
        error = err;
      }
      expect(isFencelineError(error), text.slice(0, 40)).toBe(true);
      expect((error as Error).message).toContain('FL_NODES "n1"');
      expect((error as Error).message).toContain(mentions);
    }
    expect(() => parseSnapshot("n2", JSON.stringify(snapshot))).toThrow('FL_NODES "n2" holds the snapshot of node "n1"');
  });
});
