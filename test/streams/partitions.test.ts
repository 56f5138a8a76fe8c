import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// streams cannot depend on bus (bus depends on streams), so the test reaches the launcher by path.
import { connectNats, startNatsServer, type NatsServer } from "@fenceline/bus";
import { Streams, Subjects, createDefinitions, fnv1a, parseEventSubject, partitionOf, provisionStreams } from "@fenceline/streams";

/** Names a fleet may have: plain, dotted (their token has '_'), long, digits only. */
const NODES = [
  "node-1",
  "node-2",
  "db-1.rack2",
  "worker-17.eu-west-1.compute.internal",
  "a",
  "0",
  "9.9.9.9",
  ...Array.from({ length: 60 }, (_, i) => `n${i}.z${i % 7}`),
];

describe("server-side partitioning (FL_EVENTS's subject transform)", () => {
  let server: NatsServer;
  let nc: NatsConnection;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connectNats(server.url, { name: "partitions-test" });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it("fnv1a is Go's FNV-1a 32 over UTF-8 bytes", () => {
    // Reference values of hash/fnv New32a.
    expect(fnv1a("")).toBe(0x811c9dc5);
    expect(fnv1a("a")).toBe(0xe40c292c);
    expect(fnv1a("foobar")).toBe(0xbf9cf968);
    // Non-ASCII text hashes its UTF-8 bytes, as Go does with a string's bytes.
    let h = 0x811c9dc5;
    for (const byte of [0xc3, 0xa9]) h = Math.imul(h ^ byte, 0x01000193);
    expect(fnv1a("é")).toBe(h >>> 0);
  });

  for (const partitions of [16, 7]) {
    it(`stores fl.evt.<node> under the partition partitionOf computes (${partitions} partitions)`, async () => {
      await provisionStreams(nc, { partitions });
      const js = jetstream(nc);
      const jsm = await jetstreamManager(nc);
      for (const node of NODES) {
        const ack = await js.publish(Subjects.event(node), "{}");
        const stored = await jsm.streams.getMessage(Streams.events, { seq: ack.seq });
        expect(stored?.subject, node).toBe(Subjects.storedEvent(node, partitions));
        expect(parseEventSubject(stored!.subject)).toMatchObject({ partition: partitionOf(node, partitions), node });
      }
      // The dotted names are the ones a hash of the name (not of its token) would place elsewhere.
      expect(NODES.some((n) => fnv1a(n) % partitions !== partitionOf(n, partitions))).toBe(true);
      await jsm.streams.delete(Streams.events);
    });
  }

  it("refuses to change the partition count of an existing FL_EVENTS", async () => {
    await provisionStreams(nc, { partitions: 16 });
    await expect(provisionStreams(nc, { partitions: 8 })).rejects.toThrow(
      /FL_EVENTS is split into 16 partitions, this process uses 8: set FENCELINE_PARTITIONS=16/,
    );
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(Streams.events)).config.subject_transform?.dest).toBe("fl.evt.{{partition(16,1)}}.{{wildcard(1)}}");
  });

  it("stores nothing published on a subject with more tokens (no stream listens there)", async () => {
    const js = jetstream(nc);
    await expect(js.publish("fl.evt.3.node-1", "{}", { timeout: 1_000 })).rejects.toThrow();
    const definitions = createDefinitions();
    expect(definitions.streams.find((s) => s.name === Streams.events)?.subjects).toEqual(["fl.evt.*"]);
  });
});
