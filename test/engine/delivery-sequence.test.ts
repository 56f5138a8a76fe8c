import { afterEach, describe, expect, it } from "vitest";
import { jetstream } from "@nats-io/jetstream";
import { createEvent, type NodeEvent } from "@fenceline/contracts";
import { publishEvent } from "@fenceline/bus";
import { jetStreamPartitionConsumer, type EventMessage } from "@fenceline/engine";
import { Consumers, Streams, eventPartitions, partitionOf } from "@fenceline/streams";
import { startJetStream, testLog, waitFor, type TestJetStream } from "./nats-helpers.js";

/**
 * What the partition loop assumes of JetStream's delivery (consumer) sequence, checked against a
 * real nats-server through the adapter the engine runs: a new consumer's first delivery is 1,
 * every delivery takes the next number, and a message delivered to someone else (a pull that
 * never reached us) is a gap in what we see. The chaos lab's model (`SimConsumer`) does the same.
 */
let env: TestJetStream | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

const ev = (id: string, at: number): NodeEvent =>
  createEvent("signal.unhealthy", { id, node: "n1", at, source: "test", data: { signal: "serf", since: at } }) as NodeEvent;

async function collect(consumer: ReturnType<typeof jetStreamPartitionConsumer>, count: number) {
  const got: EventMessage[] = [];
  const subscription = await consumer.subscribe({ deliver: (m) => got.push(m), ended: () => {} });
  await waitFor(`${count} deliveries`, () => got.length >= count);
  return { got: got.map((m) => [m.seq, m.deliverySeq]), subscription };
}

describe("the engine partition consumer's delivery sequence (real nats-server)", () => {
  it("a delivery to someone else is a gap; a rewind delivers everything unacknowledged again from delivery 1", async () => {
    env = await startJetStream();
    const { js, jsm } = env;
    const partition = partitionOf("n1", eventPartitions());
    const name = Consumers.enginePartition(partition);
    const seqs: number[] = [];
    for (const [i, id] of ["e1", "e2", "e3"].entries()) seqs.push((await publishEvent(js, ev(id, 1_000 + i))).seq);

    // Another client takes the first message and never acks it (a dead owner's pull answered).
    const thief = jetstream(await env.connect("thief"));
    const stolen = await (await thief.consumers.get(Streams.events, name)).next({ expires: 2_000 });
    expect([stolen!.seq, stolen!.info.deliverySequence]).toEqual([seqs[0], 1]);

    const consumer = jetStreamPartitionConsumer({
      partition,
      name,
      nc: env.nc,
      js,
      jsm,
      log: testLog("delivery-sequence"),
      maxMessages: 10,
    });
    const first = await collect(consumer, 2);
    expect(first.got).toEqual([
      [seqs[1], 2],
      [seqs[2], 3],
    ]);
    first.subscription.stop();

    // A message is in flight, so prepare rewinds even when not forced; the next delivery is 1.
    expect(await consumer.prepare(false)).toBe(0);
    const second = await collect(consumer, 3);
    expect(second.got).toEqual([
      [seqs[0], 1],
      [seqs[1], 2],
      [seqs[2], 3],
    ]);
    second.subscription.ackThrough(seqs[2]!);
    await waitFor(
      "the ack of the last message to acknowledge all three",
      async () => (await jsm.consumers.info(Streams.events, name)).num_ack_pending === 0,
    );
    const info = await jsm.consumers.info(Streams.events, name);
    expect(info.ack_floor.stream_seq).toBe(seqs[2]);
    second.subscription.stop();
    // Nothing in flight: prepare leaves the consumer alone and says where its deliveries are.
    expect(await consumer.prepare(false)).toBe(3);
  });
});
