import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectNats,
  createJetStreamPipeline,
  JetStreamPublishError,
  startNatsServer,
  WRONG_LAST_SEQUENCE,
  type NatsServer,
} from "../src/index.js";

describe("the JetStream pipeline", () => {
  let server: NatsServer;
  let nc: NatsConnection;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connectNats(server.url, { name: "pipeline-test" });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "PIPE", subjects: ["pipe.>"] });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it("stores a batch in order and answers each message with its sequence; a repeated id gets the first copy's", async () => {
    const pipeline = createJetStreamPipeline(nc);
    const messages = Array.from({ length: 500 }, (_, i) => ({ subject: `pipe.n${i % 7}`, data: JSON.stringify({ i }), msgID: `m-${i}` }));
    const acks = await pipeline.publish(messages);
    expect(acks).toEqual(messages.map((_, i) => i + 1));
    const again = await pipeline.publish([messages[3]!, { subject: "pipe.x", data: "{}", msgID: "m-new" }]);
    expect(again).toEqual([4, 501]);
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info("PIPE")).state.messages).toBe(501);
    const stored = await jsm.streams.getMessage("PIPE", { seq: 250 });
    expect(stored?.json()).toEqual({ i: 249 });
    pipeline.close();
  });

  it("reports per message: no stream for the subject (no responders) fails that message only", async () => {
    const pipeline = createJetStreamPipeline(nc);
    const acks = await pipeline.publish([
      { subject: "pipe.a", data: "1", msgID: "ok-1" },
      { subject: "nostream.a", data: "2", msgID: "lost-1" },
      { subject: "pipe.b", data: "3", msgID: "ok-2" },
    ]);
    expect(typeof acks[0]).toBe("number");
    expect(acks[1]).toBeInstanceOf(Error);
    expect((acks[1] as Error).message).toMatch(/no responders/);
    expect(typeof acks[2]).toBe("number");
    pipeline.close();
  });

  it("does a KV compare-and-set with the expected-last-subject-sequence header", async () => {
    const kv = await new Kvm(nc).create("PIPEKV");
    const subject = (kv as unknown as { subjectForKey(key: string, edit: boolean): string }).subjectForKey("n1", true);
    const pipeline = createJetStreamPipeline(nc);
    const expect0 = { "Nats-Expected-Last-Subject-Sequence": "0" };
    const [created] = await pipeline.publish([{ subject, data: "a", headers: expect0 }]);
    expect(typeof created).toBe("number");
    const [conflict] = await pipeline.publish([{ subject, data: "b", headers: expect0 }]);
    expect(conflict).toBeInstanceOf(JetStreamPublishError);
    expect((conflict as JetStreamPublishError).apiCode).toBe(WRONG_LAST_SEQUENCE);
    const [updated] = await pipeline.publish([{ subject, data: "c", headers: { "Nats-Expected-Last-Subject-Sequence": String(created) } }]);
    expect(typeof updated).toBe("number");
    expect((await kv.get("n1"))?.string()).toBe("c");
    pipeline.close();
  });

  it("fails what is not acknowledged within its timeout, and everything once closed", async () => {
    // A plain subscriber that never answers stands in for a stream that does not respond.
    const silent = nc.subscribe("silent.>");
    const pipeline = createJetStreamPipeline(nc, { timeoutMs: 200 });
    const started = Date.now();
    const acks = await pipeline.publish([
      { subject: "pipe.c", data: "1", msgID: "t-1" },
      { subject: "silent.x", data: "2", msgID: "t-2" },
    ]);
    expect(typeof acks[0]).toBe("number");
    expect((acks[1] as Error).message).toMatch(/no JetStream acknowledgement within 200 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    const pending = pipeline.publish([{ subject: "silent.y", data: "3", msgID: "t-3" }]);
    pipeline.close();
    expect(((await pending)[0] as Error).message).toMatch(/closed/);
    expect(((await pipeline.publish([{ subject: "pipe.d", data: "4" }]))[0] as Error).message).toMatch(/closed/);
    silent.unsubscribe();
  });
});
