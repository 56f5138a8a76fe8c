import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectNats,
  createFastBatchPublisher,
  JetStreamPublishError,
  startNatsServer,
  WRONG_LAST_SEQUENCE,
  type NatsServer,
  type StreamMessage,
} from "../src/index.js";

/** Fast batch publishing on a real nats-server: what the engine's outputs rely on. */
describe("the fast batch publisher", () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connectNats(server.url, { name: "fast-batch-test" });
    jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "FB", subjects: ["fb.>"], allow_batched: true });
    await jsm.streams.add({ name: "NOFB", subjects: ["nofb.>"] });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  const messages = (from: number, n: number, headers: Record<number, Record<string, string>> = {}): StreamMessage[] =>
    Array.from({ length: n }, (_, i) => ({
      subject: `fb.n${(from + i) % 7}`,
      data: JSON.stringify({ i: from + i }),
      msgID: `m-${from + i}`,
      ...(headers[from + i] ? { headers: headers[from + i] } : {}),
    }));
  const stored = async () => (await jsm.streams.info("FB")).state.messages;
  const all = async () => {
    const { state } = await jsm.streams.info("FB");
    const out: number[] = [];
    for (let seq = state.first_seq; seq <= state.last_seq; seq++)
      out.push((await jsm.streams.getMessage("FB", { seq }))!.json<{ i: number }>().i);
    return out;
  };

  it("stores a batch in order with one acknowledgement; the same ids again (a replay) are stored once and count as stored", async () => {
    const batches = createFastBatchPublisher(nc);
    expect(await batches.publish(messages(0, 600))).toEqual(new Array(600).fill(null));
    expect(await stored()).toBe(600);
    expect(await batches.publish(messages(0, 600))).toEqual(new Array(600).fill(null));
    expect(await batches.publish(messages(595, 10))).toEqual(new Array(10).fill(null));
    expect(await all()).toEqual(Array.from({ length: 605 }, (_, i) => i));
    batches.close();
  });

  it("ends the batch at a message the stream refuses: the ones before are stored, it has the stream's error, the rest fail", async () => {
    const batches = createFastBatchPublisher(nc);
    const before = await stored();
    // A compare-and-set that cannot hold, in the middle of the batch.
    const results = await batches.publish(messages(1_000, 5, { 1002: { "Nats-Expected-Last-Subject-Sequence": "1" } }));
    expect(results.slice(0, 2)).toEqual([null, null]);
    expect(results[2]).toBeInstanceOf(JetStreamPublishError);
    expect((results[2] as JetStreamPublishError).apiCode).toBe(WRONG_LAST_SEQUENCE);
    expect(results.slice(3).every((r) => r instanceof Error)).toBe(true);
    expect(await stored()).toBe(before + 2);
    // The same batch without the bad header, as a replay would send it: the first two are duplicates.
    expect(await batches.publish(messages(1_000, 5))).toEqual(new Array(5).fill(null));
    expect(await stored()).toBe(before + 5);
    batches.close();
  });

  it("fails every message on a stream that does not allow batches, and on a closed publisher", async () => {
    const batches = createFastBatchPublisher(nc);
    const refused = await batches.publish([
      { subject: "nofb.a", data: "1" },
      { subject: "nofb.a", data: "2" },
    ]);
    expect(refused.every((r) => r instanceof Error && /batch publish is disabled/.test(r.message))).toBe(true);
    batches.close();
    expect((await batches.publish(messages(2_000, 2))).every((r) => r instanceof Error)).toBe(true);
  });
});
