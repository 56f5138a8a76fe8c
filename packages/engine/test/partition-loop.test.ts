import { describe, expect, it } from "vitest";
import { DEMO_POLICY, createEvent, type NodeEvent } from "@fenceline/contracts";
import { createLogger } from "@fenceline/bus";
import { Subjects } from "@fenceline/streams";
import {
  createDecider,
  createEngineCore,
  createMemoryOutputs,
  createMemorySnapshotStore,
  createPartitionLoop,
  type EventMessage,
  type PartitionConsumer,
  type OutputSink,
} from "../src/index.js";

const log = createLogger("partition-loop-test", { level: "silent" });
const PARTITIONS = 1;

const event = (node: string, id: string, at: number): NodeEvent =>
  createEvent("signal.unhealthy", { id, node, at, source: "test", data: { signal: "serf", since: at } }) as NodeEvent;
const message = (e: NodeEvent, seq: number, deliverySeq: number, subject = Subjects.storedEvent(e.node, PARTITIONS)): EventMessage => ({
  subject,
  data: Buffer.from(JSON.stringify(e)),
  seq,
  deliverySeq,
});

/**
 * A consumer the test drives: `deliveries` is what each subscription delivers (one list per
 * subscription, in order); it records prepares (force or not), acks and stops.
 */
function scriptedConsumer(deliveries: EventMessage[][]) {
  const calls: string[] = [];
  let subscription = 0;
  const consumer: PartitionConsumer = {
    async prepare(force) {
      calls.push(`prepare ${force ? "force" : ""}`.trim());
      return 0;
    },
    async subscribe({ deliver }) {
      const list = deliveries[subscription++] ?? [];
      queueMicrotask(() => list.forEach(deliver));
      let stopped = false;
      return {
        ackThrough: (seq) => void calls.push(`ack ${seq}`),
        stop: () => {
          if (!stopped) calls.push("stop");
          stopped = true;
        },
      };
    },
  };
  return { consumer, calls };
}

async function run(deliveries: EventMessage[][], options: { outputs?: OutputSink; until: (calls: string[]) => boolean }) {
  const snapshots = createMemorySnapshotStore();
  const memory = createMemoryOutputs();
  const core = createEngineCore({ decider: createDecider(DEMO_POLICY), snapshots, outputs: options.outputs ?? memory });
  const { consumer, calls } = scriptedConsumer(deliveries);
  const letters: string[] = [];
  const loop = createPartitionLoop({
    partition: 0,
    partitions: PARTITIONS,
    consumer,
    core,
    deadLetters: async (l) => void letters.push(`${l.msgID} ${l.reason}`),
    log,
    valid: () => true,
    onBatch: () => {},
    sleep: () => new Promise((resolve) => setImmediate(resolve)),
  });
  await loop.start();
  for (let i = 0; i < 200 && !options.until(calls); i++) await new Promise((resolve) => setImmediate(resolve));
  await loop.stop();
  return { calls, letters, memory, snapshots };
}

describe("the partition loop (transport-agnostic)", () => {
  it("applies a batch and acks its last message once", async () => {
    const a = event("node-a", "a1", 1_000);
    const b = event("node-b", "b1", 1_000);
    const { calls, memory } = await run([[message(a, 1, 1), message(b, 2, 2)]], { until: (c) => c.includes("ack 2") });
    expect(calls).toEqual(["prepare", "ack 2", "stop"]);
    expect(memory.audit.map((r) => r.seq)).toEqual([1, 2]);
  });

  it("a gap in the delivery sequence (a lost delivery): applies what came before it, never acks past it, and rewinds", async () => {
    const e1 = event("node-a", "a1", 1_000);
    const e2 = event("node-a", "a2", 1_001);
    const e3 = event("node-a", "a3", 1_002);
    // Delivery 2 (event 2) was lost on its way; event 3 arrives as delivery 3.
    const first = [message(e1, 1, 1), message(e3, 3, 3)];
    // After the rewind, every unacknowledged event comes again from delivery 1.
    const second = [message(e2, 2, 1), message(e3, 3, 2)];
    const { calls, memory } = await run([first, second], { until: (c) => c.includes("ack 3") });
    expect(calls).toEqual(["prepare", "ack 1", "stop", "prepare force", "ack 3", "stop"]);
    // Event 2 was applied before event 3: nothing skipped, nothing lost.
    expect(memory.audit.map((r) => r.seq)).toEqual([1, 2, 3]);
  });

  it("a failed output publish: acks only what came before the failed event and rewinds; the replay applies it", async () => {
    const e1 = event("node-a", "a1", 1_000);
    const e2 = event("node-b", "b1", 1_000);
    const memory = createMemoryOutputs();
    let failOnce = true;
    const failing = (o: Parameters<OutputSink["publish"]>[0][number]) => failOnce && o.type === "audit" && o.record.seq === 2;
    const outputs: OutputSink = {
      publish: async (list) => {
        await memory.publish(list.filter((o) => !failing(o)));
        const out = list.map((o) => (failing(o) ? new Error("publish timed out") : null));
        failOnce = false;
        return out;
      },
    };
    const { calls } = await run([[message(e1, 1, 1), message(e2, 2, 2)], [message(e2, 2, 1)]], {
      outputs,
      until: (c) => c.includes("ack 2"),
    });
    expect(calls).toEqual(["prepare", "ack 1", "stop", "prepare force", "ack 2", "stop"]);
    expect(memory.audit.map((r) => r.seq)).toEqual([1, 2]);
  });

  it("dead-letters invalid messages and events on another node's or partition's subject, and acks past them", async () => {
    const good = event("node-a", "a1", 1_000);
    const bad: EventMessage = {
      subject: Subjects.storedEvent("node-a", PARTITIONS),
      data: Buffer.from("{not json"),
      seq: 2,
      deliverySeq: 2,
    };
    const elsewhere = message(event("node-a", "a2", 1_001), 3, 3, Subjects.storedEvent("node-b", PARTITIONS));
    const otherPartition = message(event("node-a", "a3", 1_002), 4, 4, "fl.evt.7.node-a");
    const { calls, letters, memory } = await run([[message(good, 1, 1), bad, elsewhere, otherPartition]], {
      until: (c) => c.includes("ack 4"),
    });
    expect(letters).toEqual(["dlq:FL_EVENTS:2 not-json", "dlq:FL_EVENTS:3 forbidden", "dlq:FL_EVENTS:4 forbidden"]);
    expect(calls).toEqual(["prepare", "ack 4", "stop"]);
    expect(memory.audit.map((r) => r.seq)).toEqual([1]);
  });
});
