import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_POLICY, createEvent, type NodeEvent } from "@fenceline/contracts";
import { connectNats, publishAudit, startNatsServer, type NatsServer } from "@fenceline/bus";
import { createDecider, fold, type NodeSnapshot } from "@fenceline/engine";
import { Buckets, Subjects, provisionStreams } from "@fenceline/streams";
import { readAudit, readAuditRecords, readEvents, readNodeSnapshots } from "../src/index.js";

const decider = createDecider(DEMO_POLICY);
const joined = (node: string, id: string, at = 1_000): NodeEvent =>
  createEvent("node.joined", { id, node, at, source: "test", data: { bootId: "b1", incarnation: 1 } });
const snapshotOf = (node: string, seq: number): NodeSnapshot => fold(decider, null, joined(node, `j-${node}-${seq}`), seq).snapshot;

describe("the read model on a real nats-server", () => {
  let server: NatsServer;
  let nc: NatsConnection;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connectNats(server.url, { name: "read-model-test" });
    await provisionStreams(nc);
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it("reads every node's last snapshot, sorted by name (node-2 before node-10), without deleted or invalid ones", async () => {
    expect(await readNodeSnapshots(nc)).toEqual([]);
    const kv = await new Kvm(nc).open(Buckets.nodes);
    for (const node of ["node-10", "node-2", "node-1", "gone"]) await kv.put(node, JSON.stringify(snapshotOf(node, 1)));
    await kv.put("node-2", JSON.stringify(snapshotOf("node-2", 7)));
    await kv.delete("gone");
    await kv.put("broken", JSON.stringify({ ...snapshotOf("broken", 1), lastSeq: "one" }));
    const invalid: string[] = [];
    const snapshots = await readNodeSnapshots(nc, { onInvalid: (node) => invalid.push(node) });
    expect(snapshots.map((s) => s.node)).toEqual(["node-1", "node-2", "node-10"]);
    expect(snapshots.find((s) => s.node === "node-2")!.lastSeq).toBe(7);
    expect(invalid).toEqual(["broken"]);
  });

  it("reads FL_EVENTS as the engine applies them: invalid messages and events on another node's subject are left out", async () => {
    const js = jetstream(nc);
    await js.publish(Subjects.event("a"), JSON.stringify(joined("a", "e1")), { msgID: "e1" });
    await js.publish(Subjects.event("b"), JSON.stringify(joined("a", "e2")), { msgID: "e2" });
    await js.publish(Subjects.event("a"), "not json", { msgID: "e3" });
    await js.publish(Subjects.event("b"), JSON.stringify(joined("b", "e4")), { msgID: "e4" });
    expect((await readEvents(nc)).map((e) => e.event.id)).toEqual(["e1", "e4"]);
    expect((await readEvents(nc, "b")).map((e) => e.event.id)).toEqual(["e4"]);
  });

  it("reads FL_AUDIT to its end, all or one node's; readAudit stops at the end unless it follows", async () => {
    const js = jetstream(nc);
    for (const [node, seq] of [
      ["a", 1],
      ["b", 2],
      ["a", 3],
    ] as const) {
      const result = fold(decider, null, joined(node, `audit-${seq}`), seq);
      await publishAudit(js, result.audit);
    }
    expect((await readAuditRecords(nc)).map((r) => r.seq)).toEqual([1, 2, 3]);
    expect((await readAuditRecords(nc, "a")).map((r) => r.seq)).toEqual([1, 3]);
    const read: number[] = [];
    for await (const record of readAudit(nc, { node: "b" })) read.push(record.seq);
    expect(read).toEqual([2]);
  });
});
