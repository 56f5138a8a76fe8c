import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { DeadLetter, createEvent, type AuditRecord, type Command } from "@fenceline/contracts";
import { Streams, Subjects, provisionStreams } from "@fenceline/streams";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectNats,
  createLogger,
  publishAudit,
  publishCommand,
  publishDeadLetter,
  publishEvent,
  startNatsServer,
  type NatsServer,
} from "../src/index.js";

describe("publish helpers", () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let js: JetStreamClient;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connectNats(server.url, { name: "publish-test" });
    await provisionStreams(nc);
    js = jetstream(nc);
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it("stores an event once when it is published twice with the same id", async () => {
    const event = createEvent("operator.pause", {
      id: "evt-1",
      node: "node-a.example",
      at: 1,
      source: "test",
      data: { reason: "maintenance" },
    });
    const first = await publishEvent(js, event);
    const second = await publishEvent(js, event);
    expect(first).toMatchObject({ stream: Streams.events, duplicate: false });
    expect(second).toMatchObject({ stream: Streams.events, seq: first.seq, duplicate: true });

    const jsm = await jetstreamManager(nc);
    const stored = await jsm.streams.getMessage(Streams.events, { last_by_subj: Subjects.storedEvent("node-a.example") });
    expect(stored?.json()).toEqual(event);
    expect(stored?.header.get("Nats-Msg-Id")).toBe("evt-1");
  });

  it("routes a command to its actuator's subject", async () => {
    const command: Command = {
      v: 1,
      id: "cmd-1",
      node: "node-a",
      epoch: 2,
      kind: "watchdog.stop",
      issuedAt: 1,
      deadline: 2,
      causedBy: 1,
      params: { reason: "peers say unhealthy" },
    };
    const ack = await publishCommand(js, command);
    expect(ack).toMatchObject({ stream: Streams.commands, duplicate: false });
    expect((await publishCommand(js, command)).duplicate).toBe(true);
    const jsm = await jetstreamManager(nc);
    const stored = await jsm.streams.getMessage(Streams.commands, { seq: ack.seq });
    expect(stored?.subject).toBe("fl.cmd.agent.node-a");
  });

  it("writes an audit record once", async () => {
    const record: AuditRecord = {
      v: 1,
      id: "audit:node-a:1",
      node: "node-a",
      seq: 1,
      at: 1,
      event: { id: "evt-1", type: "operator.pause", source: "test" },
      from: "healthy",
      to: "paused",
      changed: true,
      epoch: 0,
      commands: [],
      timers: { set: {}, cleared: [] },
      policyVersion: "1",
    };
    expect((await publishAudit(js, record)).stream).toBe(Streams.audit);
    expect((await publishAudit(js, record)).duplicate).toBe(true);
  });

  it("keeps a dead letter in FL_DLQ, from a plain connection too", async () => {
    const data = new TextEncoder().encode("{oops");
    const ack = await publishDeadLetter(nc, "test", "fl.evt.x", data, "not-json", "bad", {
      log: createLogger("t", { level: "silent" }),
      at: 5,
    });
    expect(ack.stream).toBe(Streams.deadLetters);
    const jsm = await jetstreamManager(nc);
    const stored = await jsm.streams.getMessage(Streams.deadLetters, { seq: ack.seq });
    expect(stored?.subject).toBe("fl.dlq.test");
    expect(DeadLetter.parse(stored?.json())).toEqual({
      v: 1,
      subject: "fl.evt.x",
      reason: "not-json",
      error: "bad",
      receivedAt: 5,
      payload: "{oops",
      payloadBytes: 5,
    });
  });
});
