import { afterEach, describe, expect, it } from "vitest";
import { Kvm } from "@nats-io/kv";
import { DEMO_POLICY, createEvent, type AuditRecord, type NodeEvent } from "@fenceline/contracts";
import { publishEvent } from "@fenceline/bus";
import { runEngine, type RunningEngine } from "@fenceline/engine";
import { Buckets, Consumers, Streams, partitionOf } from "@fenceline/streams";
import {
  messageCount,
  readJson,
  readSnapshots,
  startJetStream,
  stoppedClock,
  testLog,
  waitFor,
  type TestJetStream,
} from "./nats-helpers.js";

/**
 * The engine applies a node's events in stream order even when the consumer delivers them out of
 * order (a failed event is redelivered after a delay while later ones keep coming): a later
 * event waits. But an earlier event the consumer has already acknowledged never comes again, so
 * it must not hold anything back.
 */
let env: TestJetStream | undefined;
const engines: RunningEngine[] = [];
afterEach(async () => {
  for (const engine of engines.splice(0)) await engine.stop();
  await env?.stop();
  env = undefined;
});

const ev = (id: string, type: "node.joined" | "heartbeat.missed", at: number): NodeEvent =>
  type === "node.joined"
    ? createEvent("node.joined", { id, node: "n1", at, source: "test", data: { bootId: "b1", incarnation: 1 } })
    : createEvent("heartbeat.missed", { id, node: "n1", at, source: "test", data: { lastSeenAt: at - 1_000, bootId: "b1" } });

describe("per-node event order (real nats-server)", () => {
  it("is not held back by acknowledged events when FL_NODES lost the node's snapshot", async () => {
    env = await startJetStream();
    const { js, jsm, nc } = env;
    const start = async () => {
      const engine = await runEngine({
        nc: await env!.connect("engine"),
        policy: DEMO_POLICY,
        log: testLog("engine"),
        clock: stoppedClock,
        instanceId: "engine",
      });
      engines.push(engine);
      return engine;
    };
    const first = await start();
    await publishEvent(js, ev("e1", "node.joined", 1_000));
    await publishEvent(js, ev("e2", "heartbeat.missed", 3_000));
    await waitFor("two audit records", async () => (await messageCount(jsm, Streams.audit)) === 2);
    await waitFor(
      "both events acknowledged",
      async () => (await jsm.consumers.info(Streams.events, Consumers.enginePartition(partitionOf("n1")))).ack_floor.stream_seq === 2,
    );
    await first.stop();

    // The snapshot is gone (an operator emptied the bucket); the engine restarts without it.
    await (await new Kvm(nc).open(Buckets.nodes)).purge("n1");
    expect((await readSnapshots(nc)).size).toBe(0);
    await start();
    const ack = await publishEvent(js, ev("e3", "node.joined", 5_000));
    await waitFor("the third audit record", async () => (await messageCount(jsm, Streams.audit)) === 3);
    const audit = await readJson<AuditRecord>(jsm, Streams.audit);
    expect(audit[2]).toMatchObject({ seq: ack.seq, from: "new", to: "healthy" });
    expect((await readSnapshots(nc)).get("n1")!.snapshot).toMatchObject({ lastSeq: 3, path: "healthy" });
  });
});
