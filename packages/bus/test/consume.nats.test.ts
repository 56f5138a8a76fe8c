import { AckPolicy, jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { DeadLetter, NODE_EVENT_TYPES, NodeEvent, createEvent } from "@fenceline/contracts";
import { Streams, Subjects, provisionStreams } from "@fenceline/streams";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNats, consumeValidated, createLogger, publishEvent, startNatsServer, type NatsServer } from "../src/index.js";

const log = createLogger("consume-test", { level: "silent" });
const CONSUMER = "consume-test";

describe("consumeValidated", () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let js: JetStreamClient;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connectNats(server.url, { name: "consume-test" });
    await provisionStreams(nc);
    js = jetstream(nc);
    // A consumer of its own (explicit acks, every event), like the detectors' and actuators'.
    await (await jetstreamManager(nc)).consumers.add(Streams.events, { durable_name: CONSUMER, ack_policy: AckPolicy.Explicit });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  const event = (id: string) => createEvent("signal.healthy", { id, node: "node-a", at: 1, source: "test", data: { signal: "serf" } });

  async function deadLetters(): Promise<DeadLetter[]> {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(Streams.deadLetters);
    const out: DeadLetter[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const m = await jsm.streams.getMessage(Streams.deadLetters, { seq });
      if (m) out.push(DeadLetter.parse(m.json()));
    }
    return out;
  }

  it("dead-letters every kind of bad input, terminates it and keeps handling valid events", async () => {
    const handled: NodeEvent[] = [];
    const consumer = consumeValidated({
      js,
      stream: Streams.events,
      consumer: CONSUMER,
      schema: NodeEvent,
      knownTypes: NODE_EVENT_TYPES,
      dlqSource: "engine",
      log,
      handle: (value) => {
        handled.push(value);
      },
    });
    try {
      await js.publish("fl.evt.node-a", "{not json");
      await js.publish("fl.evt.node-a", JSON.stringify({ ...event("e-schema"), data: { signal: 42 } }));
      await js.publish("fl.evt.node-a", JSON.stringify({ ...event("e-type"), type: "node.exploded" }));
      await js.publish("fl.evt.node-a", JSON.stringify({ ...event("e-big"), data: { signal: "x".repeat(70 * 1024) } }));
      await publishEvent(js, event("e-good"));

      await expect.poll(() => handled.map((e) => e.id), { timeout: 10_000 }).toEqual(["e-good"]);
      const letters = await deadLetters();
      expect(letters.map((l) => l.reason)).toEqual(["not-json", "schema", "unknown-type", "oversize"]);
      expect(letters.every((l) => l.subject === Subjects.storedEvent("node-a"))).toBe(true);
      expect(letters[3]!.payload.length).toBe(4096);
      expect(letters[3]!.payloadBytes).toBeGreaterThan(64 * 1024);

      const jsm = await jetstreamManager(nc);
      await expect
        .poll(async () => {
          const ci = await jsm.consumers.info(Streams.events, CONSUMER);
          return { pending: ci.num_pending, unacked: ci.num_ack_pending };
        })
        .toEqual({ pending: 0, unacked: 0 });
    } finally {
      await consumer.stop();
    }
  });

  it("redelivers a message whose handler threw, then acks it", async () => {
    let attempts = 0;
    const done: string[] = [];
    const consumer = consumeValidated({
      js,
      stream: Streams.events,
      consumer: CONSUMER,
      schema: NodeEvent,
      dlqSource: "engine",
      log,
      nakDelayMs: () => 50,
      handle: (value) => {
        if (++attempts < 3) throw new Error("transient");
        done.push(value.id);
      },
    });
    try {
      await publishEvent(js, event("e-retry"));
      await expect.poll(() => done, { timeout: 10_000 }).toEqual(["e-retry"]);
      expect(attempts).toBe(3);
    } finally {
      await consumer.stop();
    }
  });

  it("stops promptly while waiting for messages", async () => {
    const consumer = consumeValidated({
      js,
      stream: Streams.events,
      consumer: CONSUMER,
      schema: NodeEvent,
      dlqSource: "engine",
      log,
      handle: () => {},
    });
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await consumer.stop();
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it("keeps retrying when the consumer does not exist yet", async () => {
    const handled: string[] = [];
    const consumer = consumeValidated({
      js,
      stream: Streams.events,
      consumer: "late",
      schema: NodeEvent,
      dlqSource: "late",
      log,
      retryMs: 50,
      handle: (value) => {
        handled.push(value.id);
      },
    });
    try {
      await new Promise((r) => setTimeout(r, 200));
      const jsm = await jetstreamManager(nc);
      await jsm.consumers.add(Streams.events, { durable_name: "late", ack_policy: "explicit", deliver_policy: "new" });
      await publishEvent(js, event("e-late"));
      await expect.poll(() => handled, { timeout: 10_000 }).toEqual(["e-late"]);
    } finally {
      await consumer.stop();
    }
  });

  it("with concurrency, one slow node does not hold up another, and each node's messages stay in order", async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add(Streams.events, {
      durable_name: "consume-parallel",
      ack_policy: AckPolicy.Explicit,
      filter_subjects: [Subjects.eventsOf("par-a"), Subjects.eventsOf("par-b")],
    });
    const order: string[] = [];
    const ev = (id: string, node: string) => createEvent("signal.healthy", { id, node, at: 1, source: "test", data: { signal: "serf" } });
    const consumer = consumeValidated({
      js,
      stream: Streams.events,
      consumer: "consume-parallel",
      schema: NodeEvent,
      dlqSource: "test",
      log,
      concurrency: 4,
      handle: async (value) => {
        if (value.id === "a1") await new Promise((r) => setTimeout(r, 600));
        order.push(value.id);
      },
    });
    try {
      await publishEvent(js, ev("a1", "par-a"));
      await publishEvent(js, ev("a2", "par-a"));
      await publishEvent(js, ev("b1", "par-b"));
      await expect.poll(() => order.length, { timeout: 10_000 }).toBe(3);
      expect(order.indexOf("b1")).toBeLessThan(order.indexOf("a1"));
      expect(order.indexOf("a1")).toBeLessThan(order.indexOf("a2"));
    } finally {
      await consumer.stop();
    }
  });
});
