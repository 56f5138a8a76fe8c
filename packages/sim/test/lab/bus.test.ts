import { describe, expect, it } from "vitest";
import {
  BusUnavailableError,
  Prng,
  SimBus,
  SimConsumer,
  SimPartitionConsumer,
  SimStream,
  SimSubscription,
  VirtualClock,
} from "../../src/index.js";

function setup(ackWaitMs = 1_000) {
  const clock = new VirtualClock(1_000);
  const bus = new SimBus(clock, new Prng(1));
  const stream = new SimStream<string>("S", bus, 10_000);
  const consumer = new SimConsumer("c", stream, () => true, ackWaitMs);
  return { clock, bus, stream, consumer };
}

describe("the in-memory JetStream", () => {
  it("stores a message id once within the duplicate window, again after it", () => {
    const { clock, stream } = setup();
    expect(stream.publish("a", "n1", "x")).toEqual({ seq: 1, duplicate: false });
    expect(stream.publish("a", "n1", "x")).toEqual({ seq: 1, duplicate: true });
    clock.advance(10_000);
    expect(stream.publish("a", "n1", "x")).toEqual({ seq: 2, duplicate: false });
    expect(stream.seqsOf("n1", 0, 10)).toEqual([1, 2]);
  });

  it("redelivers an unacknowledged message after the ack wait, and a nak'd one after its delay", () => {
    const { clock, stream, consumer } = setup();
    stream.publish("a", "n", "A");
    stream.publish("b", "n", "B");
    expect(consumer.pull(10).map((d) => d.msg.data)).toEqual(["A", "B"]);
    consumer.ack(2);
    expect(consumer.pull(10)).toEqual([]);
    expect(consumer.ackFloor()).toBe(0);
    expect(consumer.nextWakeAt()).toBe(clock.now() + 1_000);
    clock.advance(1_000);
    const again = consumer.pull(10);
    expect(again.map((d) => [d.msg.data, d.deliveryCount])).toEqual([["A", 2]]);
    consumer.nak(1, 300);
    expect(consumer.pull(10)).toEqual([]);
    clock.advance(300);
    expect(consumer.pull(10).map((d) => d.deliveryCount)).toEqual([3]);
    consumer.ack(1);
    expect(consumer.ackFloor()).toBe(2);
    expect(consumer.pending).toBe(0);
  });

  it("while NATS is down: publishes throw, nothing is delivered, acks are lost", () => {
    const { bus, stream, consumer } = setup();
    stream.publish("a", "n", "A");
    const [d] = consumer.pull(1);
    bus.setAvailable(false);
    expect(() => stream.publish("b", "n", "B")).toThrow(BusUnavailableError);
    consumer.ack(d!.msg.seq);
    bus.setAvailable(true);
    expect(consumer.pending).toBe(1);
  });

  it("a subscription yields messages one at a time in order, settles each once, and a stopped one leaves its batch to the ack wait", async () => {
    const { clock, stream, consumer } = setup();
    stream.publish("a", "n", "A", "s.n");
    stream.publish("b", "n", "B", "s.n");
    stream.publish("c", "n", "C", "s.n");
    const seen: string[] = [];
    const subscription = new SimSubscription(consumer);
    for await (const msg of subscription) {
      seen.push(JSON.parse(Buffer.from(msg.data).toString()) as string);
      expect(msg.subject).toBe("s.n");
      if (seen.length === 2) {
        subscription.stop();
        continue;
      }
      msg.ack();
      msg.nak(0); // a second settle is ignored, as in nats.js
    }
    expect(seen).toEqual(["A", "B"]);
    expect(consumer.pending).toBe(2);
    // A new subscription gets nothing until the ack wait has passed, then B and C again.
    const again: Array<[string, number]> = [];
    const next = new SimSubscription(consumer);
    const reading = (async () => {
      for await (const msg of next) {
        again.push([JSON.parse(Buffer.from(msg.data).toString()) as string, msg.info.deliveryCount]);
        msg.ack();
      }
    })();
    await new Promise((r) => setImmediate(r));
    expect(again).toEqual([]);
    clock.advance(1_000);
    await new Promise((r) => setImmediate(r));
    expect(again).toEqual([
      ["B", 2],
      ["C", 2],
    ]);
    next.stop();
    await reading;
  });

  it("ack policy all: an ack acknowledges every earlier message; a recreated consumer delivers the rest again from delivery 1", () => {
    const { clock, stream } = setup();
    const consumer = new SimConsumer("p", stream, () => true, 1_000, "all");
    for (const id of ["a", "b", "c", "d"]) stream.publish(id, "n", id.toUpperCase());
    expect(consumer.pull(10).map((d) => [d.msg.seq, d.deliverySeq])).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
      [4, 4],
    ]);
    consumer.ack(2);
    expect(consumer.ackFloor()).toBe(2);
    expect(consumer.info()).toEqual({ ackPending: 2, delivered: 4 });
    consumer.recreate();
    expect(consumer.info()).toEqual({ ackPending: 0, delivered: 0 });
    expect(consumer.pull(10).map((d) => [d.msg.seq, d.deliverySeq, d.deliveryCount])).toEqual([
      [3, 1, 1],
      [4, 2, 1],
    ]);
    clock.advance(1_000);
    // Redeliveries after the ack wait take new delivery sequences.
    expect(consumer.pull(10).map((d) => [d.msg.seq, d.deliverySeq, d.deliveryCount])).toEqual([
      [3, 3, 2],
      [4, 4, 2],
    ]);
  });

  it("a lost delivery uses up its delivery sequence (the gap the engine's partition loop detects)", () => {
    const { bus, stream } = setup();
    const consumer = new SimConsumer("p", stream, () => true, 1_000, "all");
    bus.chaos = { lostAck: 0, lostDelivery: 1 };
    stream.publish("a", "n", "A");
    expect(consumer.pull(10)).toEqual([]);
    bus.chaos = null;
    stream.publish("b", "n", "B");
    expect(consumer.pull(10).map((d) => [d.msg.seq, d.deliverySeq])).toEqual([[2, 2]]);
    expect(consumer.info()).toEqual({ ackPending: 2, delivered: 2 });
  });

  it("a killed engine process's partition consumer delivers nothing more and its acks are lost", async () => {
    const { stream } = setup();
    const consumer = new SimConsumer("p", stream, () => true, 1_000, "all");
    const process = new SimPartitionConsumer(consumer, 10);
    expect(await process.prepare(false)).toBe(0);
    const got: number[] = [];
    const subscription = await process.subscribe({ deliver: (m) => got.push(m.seq), ended: () => {} });
    stream.publish("a", "n", "A");
    await new Promise((r) => setImmediate(r));
    expect(got).toEqual([1]);
    process.kill();
    subscription.ackThrough(1);
    stream.publish("b", "n", "B");
    await new Promise((r) => setImmediate(r));
    expect(got).toEqual([1]);
    expect(consumer.ackFloor()).toBe(0);
    await expect(process.prepare(false)).rejects.toThrow(/dead/);
    // The next process finds a message in flight and rewinds: both come again from delivery 1.
    const next = new SimPartitionConsumer(consumer, 10);
    expect(await next.prepare(false)).toBe(0);
    const again: Array<[number, number]> = [];
    await next.subscribe({ deliver: (m) => again.push([m.seq, m.deliverySeq]), ended: () => {} });
    await new Promise((r) => setImmediate(r));
    expect(again).toEqual([
      [1, 1],
      [2, 2],
    ]);
  });
});
