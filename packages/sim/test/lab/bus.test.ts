import { describe, expect, it } from "vitest";
import { BusUnavailableError, Prng, SimBus, SimConsumer, SimStream, SimWorker, VirtualClock } from "../../src/index.js";

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

  it("a worker handles messages one at a time in order, and a killed worker leaves its batch to the ack wait", async () => {
    const { clock, stream, consumer } = setup();
    const seen: string[] = [];
    const worker = new SimWorker(consumer, async (d) => {
      seen.push(d.msg.data);
      if (d.msg.data === "B" && seen.length === 2) {
        worker.kill();
        return;
      }
      consumer.ack(d.msg.seq);
    });
    stream.publish("a", "n", "A");
    stream.publish("b", "n", "B");
    stream.publish("c", "n", "C");
    worker.kick();
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(["A", "B"]);
    expect(consumer.pending).toBe(2);
    // A new worker gets nothing until the ack wait has passed, then B and C again.
    const again: string[] = [];
    const next = new SimWorker(consumer, async (d) => {
      again.push(d.msg.data);
      consumer.ack(d.msg.seq);
    });
    next.kick();
    await new Promise((r) => setImmediate(r));
    expect(again).toEqual([]);
    clock.advance(1_000);
    await new Promise((r) => setImmediate(r));
    expect(again).toEqual(["B", "C"]);
  });
});
