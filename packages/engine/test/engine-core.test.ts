import { describe, expect, it } from "vitest";
import {
  DEMO_POLICY,
  ErrorCode,
  createEvent,
  isFencelineError,
  type NodeEvent,
  type NodeEventOf,
  type NodeEventType,
} from "@fenceline/contracts";
import {
  createDecider,
  createEngineCore,
  createMemoryOutputs,
  createMemorySnapshotStore,
  type Output,
  type OutputSink,
  type SnapshotStore,
} from "../src/index.js";

const decider = createDecider(DEMO_POLICY);

const ev = <T extends NodeEventType>(node: string, type: T, data: NodeEventOf<T>["data"], at: number): NodeEvent =>
  createEvent(type, { id: `${node}:${type}@${at}`, node, at, source: "test", data }) as NodeEvent;

const missed = (node: string, at = 2_000) => ev(node, "heartbeat.missed", { lastSeenAt: at - 1_000, bootId: "b1" }, at);
const suspectFired = (node: string) => ev(node, "timer.fired", { timer: "suspect", due: 3_000 }, 3_000);
const slotGranted = (node: string) =>
  ev(node, "command.result", { commandId: `cmd:${node}:2:0`, kind: "slot.acquire", epoch: 0, ok: true }, 3_100);

/** Memory ports that log every call, in order, to `calls`. */
function recordedPorts() {
  const calls: string[] = [];
  const store = createMemorySnapshotStore();
  const outputs = createMemoryOutputs();
  const snapshots: SnapshotStore = {
    get: async (node) => {
      calls.push(`get ${node}`);
      return store.get(node);
    },
    put: async (snapshot, revision) => {
      calls.push(`put ${snapshot.node}@${snapshot.lastSeq} rev ${revision}`);
      return store.put(snapshot, revision);
    },
    list: async () => {
      calls.push("list");
      return store.list();
    },
  };
  const sink: OutputSink = {
    publish: async (list) => {
      const commands = list.flatMap((o) => (o.type === "command" ? [o.command.id] : []));
      if (commands.length > 0) calls.push(`commands ${commands.join(",")}`);
      for (const o of list) if (o.type === "audit") calls.push(`audit ${o.record.id}`);
      return outputs.publish(list);
    },
  };
  return { calls, store, outputs, snapshots, sink };
}

describe("engine core (memory ports)", () => {
  it("publishes the commands, then the audit record, then saves the snapshot", async () => {
    const ports = recordedPorts();
    const applied: number[] = [];
    const core = createEngineCore({
      decider,
      snapshots: ports.snapshots,
      outputs: ports.sink,
      onApplied: (r) => applied.push(r.audit.seq),
    });

    const first = await core.apply(missed("n1"), 1);
    expect(first.applied).toBe(true);
    expect(ports.calls).toEqual(["get n1", "audit audit:n1:1", "put n1@1 rev 0"]);

    ports.calls.length = 0;
    await core.apply(suspectFired("n1"), 2);
    await core.apply(slotGranted("n1"), 3);
    // The cache serves the snapshot: no more gets; each put names the revision it read.
    expect(ports.calls).toEqual([
      "commands cmd:n1:2:0",
      "audit audit:n1:2",
      "put n1@2 rev 1",
      "commands cmd:n1:3:0,cmd:n1:3:1",
      "audit audit:n1:3",
      "put n1@3 rev 2",
    ]);
    expect(applied).toEqual([1, 2, 3]);
    expect(ports.outputs.commands.map((c) => c.kind)).toEqual(["slot.acquire", "taint.add", "watchdog.stop"]);
    expect(ports.outputs.audit.map((a) => a.to)).toEqual(["suspect.waiting", "suspect.requestingSlot", "fencing"]);
    expect(core.snapshot("n1")).toMatchObject({ path: "fencing", lastSeq: 3 });
    expect(await ports.store.get("n1")).toMatchObject({ snapshot: { path: "fencing", lastSeq: 3, context: { epoch: 1 } }, revision: 3 });
  });

  it("does not save the snapshot when publishing an output fails, so a retry re-emits the same ids", async () => {
    const ports = recordedPorts();
    let failAudit = false;
    const outputs: OutputSink = {
      publish: async (list) => {
        if (failAudit && list.some((o) => o.type === "audit")) {
          failAudit = false;
          return list.map(() => new Error("publish timed out"));
        }
        return ports.sink.publish(list);
      },
    };
    const core = createEngineCore({ decider, snapshots: ports.snapshots, outputs });
    await core.apply(missed("n1"), 1);
    await core.apply(suspectFired("n1"), 2);
    failAudit = true;
    ports.calls.length = 0;
    await expect(core.apply(slotGranted("n1"), 3)).rejects.toThrow("publish timed out");
    expect(ports.calls).toEqual(["commands cmd:n1:3:0,cmd:n1:3:1"]);
    expect((await ports.store.get("n1"))!.snapshot.lastSeq).toBe(2);

    const retried = await core.apply(slotGranted("n1"), 3);
    expect(retried.applied).toBe(true);
    // The memory sink deduplicates by id, as JetStream does: each command is stored once.
    expect(ports.outputs.commands.map((c) => c.id)).toEqual(["cmd:n1:2:0", "cmd:n1:3:0", "cmd:n1:3:1"]);
    expect(ports.outputs.audit.map((a) => a.id)).toEqual(["audit:n1:1", "audit:n1:2", "audit:n1:3"]);
  });

  it("skips an event at or below the last applied sequence without publishing or saving", async () => {
    const ports = recordedPorts();
    const core = createEngineCore({ decider, snapshots: ports.snapshots, outputs: ports.sink });
    await core.apply(missed("n1"), 5);
    ports.calls.length = 0;

    expect(await core.apply(suspectFired("n1"), 5)).toEqual({ applied: false, reason: "already-applied", lastSeq: 5 });
    expect(await core.apply(suspectFired("n1"), 4)).toEqual({ applied: false, reason: "already-applied", lastSeq: 5 });
    expect(ports.calls).toEqual([]);
    expect(core.snapshot("n1")).toMatchObject({ path: "suspect.waiting", lastSeq: 5 });

    // Other nodes have their own last sequence.
    expect((await core.apply(missed("n2"), 3)).applied).toBe(true);

    // A fresh core (after a restart) reads lastSeq from the store and skips too.
    const restarted = createEngineCore({ decider, snapshots: ports.snapshots, outputs: ports.sink });
    expect((await restarted.recover()).map((s) => [s.node, s.lastSeq])).toEqual([
      ["n1", 5],
      ["n2", 3],
    ]);
    ports.calls.length = 0;
    expect(await restarted.apply(suspectFired("n1"), 5)).toMatchObject({ applied: false, lastSeq: 5 });
    expect(ports.calls).toEqual([]);
    expect((await restarted.apply(suspectFired("n1"), 6)).applied).toBe(true);
  });

  it("forgets its cache and rethrows on a snapshot conflict; the retry reloads the newer snapshot", async () => {
    const ports = recordedPorts();
    const a = createEngineCore({ decider, snapshots: ports.snapshots, outputs: ports.sink });
    const b = createEngineCore({ decider, snapshots: ports.snapshots, outputs: ports.sink });

    await a.apply(missed("n1"), 1); // a caches n1 at revision 1
    await b.apply(suspectFired("n1"), 2); // b writes revision 2 behind a's back
    expect(a.snapshot("n1")).toMatchObject({ lastSeq: 1 });

    // a folds seq 3 on its stale snapshot, publishes, and is refused at the save.
    const desired = ev("n1", "config.desired", { checksums: { web: "v2" } }, 3_050);
    ports.calls.length = 0;
    const err = await a.apply(desired, 3).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isFencelineError(err, ErrorCode.Concurrency)).toBe(true);
    expect((err as Error).message).toBe("snapshot of n1 is at revision 2, not 1");
    expect(ports.calls).toEqual(["audit audit:n1:3", "put n1@3 rev 1"]);
    expect(a.snapshot("n1")).toBeUndefined();
    expect(a.snapshots()).toEqual([]);
    expect(await ports.store.get("n1")).toMatchObject({ snapshot: { lastSeq: 2, path: "suspect.requestingSlot" }, revision: 2 });

    // The redelivery reloads revision 2 and applies on top of it.
    ports.calls.length = 0;
    const retried = await a.apply(desired, 3);
    expect(ports.calls).toEqual(["get n1", "audit audit:n1:3", "put n1@3 rev 2"]);
    expect(retried).toMatchObject({ applied: true, result: { audit: { from: "suspect.requestingSlot", to: "suspect.requestingSlot" } } });
    expect(a.snapshot("n1")).toMatchObject({ path: "suspect.requestingSlot", lastSeq: 3, context: { desiredChecksums: { web: "v2" } } });
    expect(await ports.store.get("n1")).toMatchObject({ revision: 3 });

    // And the next event goes on from there.
    expect(await a.apply(slotGranted("n1"), 4)).toMatchObject({ applied: true, result: { audit: { to: "fencing", epoch: 1 } } });
  });

  it("a batch: folds in stream order, encodes each output as it is decided, saves each node's last snapshot once, keeps only the folds asked for", async () => {
    const ports = recordedPorts();
    const encoded: string[] = [];
    const sink: OutputSink<{ id: string; output: Output }> = {
      encode: (o) => {
        const id = o.type === "command" ? o.command.id : o.record.id;
        encoded.push(id);
        return { id, output: o };
      },
      publish: async (list) => {
        calls.push(`publish ${list.map((o) => ("id" in o ? o.id : "not encoded")).join(",")}`);
        return ports.outputs.publish(list.map((o) => ("id" in o ? o.output : o)));
      },
    };
    const calls = ports.calls;
    const kept: number[] = [];
    const core = createEngineCore({
      decider,
      snapshots: ports.snapshots,
      outputs: sink,
      keepResult: (r) => r.audit.changed,
      onApplied: (r) => kept.push(r.audit.seq),
    });
    const outcome = await core.applyBatch([
      { event: missed("n1"), seq: 1 },
      { event: missed("n2"), seq: 2 },
      { event: suspectFired("n1"), seq: 3 },
      { event: ev("n2", "config.desired", { checksums: { web: "v2" } }, 2_050), seq: 4 },
    ]);
    expect(outcome).toMatchObject({ skipped: 0, failedAt: null });
    expect(encoded).toEqual(["audit:n1:1", "audit:n2:2", "cmd:n1:3:0", "audit:n1:3", "audit:n2:4"]);
    expect(calls.filter((c) => c.startsWith("publish"))).toEqual(["publish audit:n1:1,audit:n2:2,cmd:n1:3:0,audit:n1:3,audit:n2:4"]);
    expect(calls.filter((c) => c.startsWith("put")).sort()).toEqual(["put n1@3 rev 0", "put n2@4 rev 0"]);
    expect(outcome.applied.map((a) => [a.seq, a.node, a.result?.audit.to ?? null])).toEqual([
      [1, "n1", "suspect.waiting"],
      [2, "n2", "suspect.waiting"],
      [3, "n1", "suspect.requestingSlot"],
      [4, "n2", null],
    ]);
    expect(outcome.applied[3]!.timers).toEqual(core.snapshot("n2")!.context.timers);
    expect(kept).toEqual([1, 2, 3]);
  });

  it("a batch whose output for a node was not stored saves nothing for that node and fails from its first event; the others are saved", async () => {
    const ports = recordedPorts();
    let failing = true;
    const outputs: OutputSink = {
      publish: async (list) => {
        const out = await ports.sink.publish(list);
        return list.map((o, i) => (failing && o.type === "audit" && o.record.seq === 4 ? new Error("publish timed out") : out[i]));
      },
    };
    const core = createEngineCore({ decider, snapshots: ports.snapshots, outputs });
    const batch = [
      { event: missed("n1"), seq: 1 },
      { event: missed("n2"), seq: 2 },
      { event: suspectFired("n1"), seq: 3 },
      { event: suspectFired("n2"), seq: 4 },
    ];
    const outcome = await core.applyBatch(batch);
    expect(outcome).toMatchObject({ failedAt: 2, skipped: 0 });
    expect(outcome.applied.map((a) => a.seq)).toEqual([1, 3]);
    expect((await ports.store.get("n1"))!.snapshot.lastSeq).toBe(3);
    expect(await ports.store.get("n2")).toBeNull();

    // The replay from the failed event: n1's events are skipped, n2's applied with the same ids.
    failing = false;
    const replay = await core.applyBatch(batch.slice(1));
    expect(replay).toMatchObject({ failedAt: null, skipped: 1 });
    expect(replay.applied.map((a) => a.seq)).toEqual([2, 4]);
    expect(ports.outputs.audit.map((a) => a.id).sort()).toEqual(["audit:n1:1", "audit:n1:3", "audit:n2:2", "audit:n2:4"]);
  });
});
