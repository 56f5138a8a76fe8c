import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_POLICY, MAX_MESSAGE_BYTES, createEvent, type AuditRecord, type DeadLetter } from "@fenceline/contracts";
import { publishEvent } from "@fenceline/bus";
import { runEngine, type RunningEngine } from "@fenceline/engine";
import { Consumers, Streams, Subjects, partitionOf } from "@fenceline/streams";
import {
  messageCount,
  readJson,
  readSnapshots,
  readStream,
  startJetStream,
  stoppedClock,
  testLog,
  waitFor,
  type TestJetStream,
} from "./nats-helpers.js";

/**
 * Rule 4 on a real nats-server: every bad input on fl.evt.<node> lands on FL_DLQ
 * (fl.dlq.engine) with its reason and a readable error, never changes a node's state, and
 * never stops the engine. So does an event published where no stream stores it.
 */
const NODE = "db-1.rack2";
const SUBJECT = Subjects.event(NODE); // fl.evt.db-1_rack2
/** Where FL_EVENTS stores it (and what the engine's consumer delivers): fl.evt.<partition>.db-1_rack2. */
const STORED = Subjects.storedEvent(NODE);
const encoder = new TextEncoder();

let env: TestJetStream;
let engine: RunningEngine;

beforeAll(async () => {
  env = await startJetStream();
  engine = await runEngine({ nc: await env.connect("engine"), policy: DEMO_POLICY, log: testLog("engine"), clock: stoppedClock });
});
afterAll(async () => {
  await engine?.stop();
  await env?.stop();
});

const valid = (id: string, at: number) =>
  createEvent("heartbeat.missed", { id, node: NODE, at, source: "heartbeat-detector", data: { lastSeenAt: at - 1_000, bootId: "b1" } });

describe("dead letters (real nats-server)", () => {
  it("dead-letters every bad input with its reason, leaves the snapshot alone and goes on", async () => {
    const { js, jsm, nc } = env;
    // A first valid event: the node exists and has a snapshot.
    await publishEvent(
      js,
      createEvent("node.joined", { id: "joined", node: NODE, at: 1_000, source: "test", data: { bootId: "b1", incarnation: 1 } }),
    );
    await waitFor("the first audit record", async () => (await messageCount(jsm, Streams.audit)) === 1);
    const before = await readSnapshots(nc);
    expect([...before.keys()]).toEqual([NODE]);
    expect(before.get(NODE)!.snapshot).toMatchObject({ path: "healthy", lastSeq: 1 });

    const oversize = JSON.stringify({ ...valid("big", 2_000), source: "x".repeat(MAX_MESSAGE_BYTES) });
    const bad: Array<{ name: string; data: string; reason: DeadLetter["reason"]; error: RegExp }> = [
      { name: "malformed JSON", data: '{"v":1,"type":"heartbeat.missed",', reason: "not-json", error: /^not JSON: / },
      {
        name: "wrong schema",
        data: JSON.stringify({
          v: 1,
          id: "s1",
          node: NODE,
          at: 2_000,
          source: "test",
          type: "heartbeat.missed",
          data: { lastSeenAt: "yesterday" },
        }),
        reason: "schema",
        error: /data\.lastSeenAt[\s\S]*data\.bootId/,
      },
      {
        name: "unknown event type",
        data: JSON.stringify({ v: 1, id: "u1", node: NODE, at: 2_000, source: "test", type: "node.exploded", data: {} }),
        reason: "unknown-type",
        error: /^unknown type "node\.exploded"; known: node\.joined, /,
      },
      {
        name: "oversize payload",
        data: oversize,
        reason: "oversize",
        error: new RegExp(`^payload is ${oversize.length} bytes, the limit is ${MAX_MESSAGE_BYTES}$`),
      },
      {
        name: "an event about another node",
        data: JSON.stringify({ ...valid("other", 2_000), node: "web-7" }),
        reason: "forbidden",
        error: /^event for node "web-7" published on the subject of node "db-1\.rack2"$/,
      },
    ];
    expect(oversize.length).toBeGreaterThan(64 * 1024);
    for (const b of bad) await js.publish(SUBJECT, encoder.encode(b.data));

    await waitFor("five dead letters", async () => (await messageCount(jsm, Streams.deadLetters)) === bad.length);
    const letters = await readStream(jsm, Streams.deadLetters);
    expect(letters.map((m) => m.subject)).toEqual(bad.map(() => "fl.dlq.engine"));
    const records = letters.map((m) => m.json<DeadLetter>());
    bad.forEach((b, i) => {
      const record = records[i]!;
      expect(record, b.name).toMatchObject({ v: 1, subject: STORED, reason: b.reason, payloadBytes: encoder.encode(b.data).byteLength });
      expect(record.error, b.name).toMatch(b.error);
      // The payload is kept as text, cut to 4 KiB.
      expect(record.payload, b.name).toBe(b.data.slice(0, 4_096));
    });

    // Nothing changed: same snapshot, same revision, no snapshot for the other node, no audit.
    const after = await readSnapshots(nc);
    expect(after).toEqual(before);
    expect(await messageCount(jsm, Streams.audit)).toBe(1);
    expect(await messageCount(jsm, Streams.commands)).toBe(0);

    // The engine still works, and the bad messages before it do not hold the valid event back.
    const ack = await publishEvent(js, valid("missed", 3_000));
    expect(ack.seq).toBe(1 + bad.length + 1);
    await waitFor("the audit record of the valid event", async () => (await messageCount(jsm, Streams.audit)) === 2);
    const audit = await readJson<AuditRecord>(jsm, Streams.audit);
    expect(audit[1]).toMatchObject({
      node: NODE,
      seq: ack.seq,
      from: "healthy",
      to: "suspect.waiting",
      event: { id: "missed", type: "heartbeat.missed" },
    });
    const final = await readSnapshots(nc);
    expect(final.get(NODE)!.snapshot).toMatchObject({ path: "suspect.waiting", lastSeq: ack.seq });
    expect(final.get(NODE)!.revision).toBeGreaterThan(before.get(NODE)!.revision);
    expect([...final.keys()]).toEqual([NODE]);

    // Every event was settled: nothing is left for the engine consumer.
    await waitFor("the consumer to catch up", async () => {
      const info = await jsm.consumers.info(Streams.events, Consumers.enginePartition(partitionOf(NODE)));
      return info.num_pending === 0 && info.num_ack_pending === 0;
    });
    // A bad input is terminated, not redelivered: still five dead letters.
    expect(await messageCount(jsm, Streams.deadLetters)).toBe(bad.length);
  });

  it("applies a valid event a plain NATS client publishes on fl.evt.<node>, whatever the node's partition", async () => {
    const { js, jsm } = env;
    // What a user of any NATS client writes: no partition to compute.
    const nodes = ["plain-1", "plain-2.rack9", "plain-3"];
    const before = await messageCount(jsm, Streams.audit);
    for (const node of nodes) {
      const joined = createEvent("node.joined", {
        id: `plain-${node}`,
        node,
        at: 5_000,
        source: "test",
        data: { bootId: "b1", incarnation: 1 },
      });
      await js.publish(`fl.evt.${node.replaceAll(".", "_")}`, JSON.stringify(joined));
    }
    await waitFor("an audit record per event", async () => (await messageCount(jsm, Streams.audit)) === before + nodes.length);
    const audit = await readJson<AuditRecord>(jsm, Streams.audit);
    expect(
      audit
        .slice(before)
        .map((r) => r.node)
        .sort(),
    ).toEqual(nodes);
    // Every stored event has a consumer that takes it: nothing is left anywhere.
    const stream = await jsm.streams.info(Streams.events);
    let pending = 0;
    for (let p = 0; p < 16; p++) {
      const info = await jsm.consumers.info(Streams.events, Consumers.enginePartition(p));
      pending += info.num_pending + info.num_ack_pending;
      expect(info.ack_floor.stream_seq).toBeLessThanOrEqual(stream.state.last_seq);
    }
    expect(pending).toBe(0);
  });

  it("refuses an event on the old per-partition subject: the publisher gets the reason, and so does FL_DLQ", async () => {
    const { js, jsm, nc } = env;
    const letters = await messageCount(jsm, Streams.deadLetters);
    const events = await messageCount(jsm, Streams.events);
    const event = valid("old-subject", 6_000);
    const old = `fl.evt.${partitionOf(NODE)}.db-1_rack2`;
    // A JetStream publish: refused with the reason (not "no responders", not stored).
    await expect(js.publish(old, JSON.stringify(event), { msgID: "old-1" })).rejects.toThrow(
      new RegExp(
        `${old.replaceAll(".", "\\.")} is a per-partition subject, which publishers wrote before the server partitioned events; publish on fl\\.evt\\.db-1_rack2`,
      ),
    );
    // A fire-and-forget publish (nats pub): dead-lettered too.
    nc.publish(old, JSON.stringify({ ...event, id: "old-2" }));
    nc.publish("fl.evt.x.y.z", "{}");
    await waitFor("three more dead letters", async () => (await messageCount(jsm, Streams.deadLetters)) === letters + 3);
    const records = (await readStream(jsm, Streams.deadLetters)).slice(letters).map((m) => m.json<DeadLetter>());
    expect(records.map((r) => [r.subject, r.reason])).toEqual([
      [old, "forbidden"],
      [old, "forbidden"],
      ["fl.evt.x.y.z", "forbidden"],
    ]);
    expect(records[2]!.error).toBe("no stream stores fl.evt.x.y.z: node events are published on fl.evt.<node>");
    // Nothing of it was stored.
    expect(await messageCount(jsm, Streams.events)).toBe(events);
  });
});
