import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_POLICY, ErrorCode, createEvent, isFencelineError } from "@fenceline/contracts";
import { createJetStreamPipeline } from "@fenceline/bus";
import { createDecider, createKvSnapshotStore, fold, type NodeSnapshot, type SnapshotStore } from "@fenceline/engine";
import { Buckets } from "@fenceline/streams";
import { startJetStream, type TestJetStream } from "./nats-helpers.js";

const decider = createDecider(DEMO_POLICY);
const snapshotOf = (node: string, seq: number): NodeSnapshot =>
  fold(
    decider,
    null,
    createEvent("node.joined", { id: `j-${node}-${seq}`, node, at: 1_000, source: "test", data: { bootId: "b1", incarnation: 1 } }),
    seq,
  ).snapshot;

describe.each([
  ["pipelined saves", true],
  ["kv.create / kv.update saves", false],
])("the FL_NODES snapshot store with %s", (_, pipelined) => {
  let env: TestJetStream;
  let store: SnapshotStore;

  beforeAll(async () => {
    env = await startJetStream();
    const kv = await new Kvm(env.nc).open(Buckets.nodes);
    store = createKvSnapshotStore(kv, env.nc, pipelined ? createJetStreamPipeline(env.nc) : undefined);
  });
  afterAll(async () => env?.stop());

  it("creates, updates with the revision read, and refuses a stale revision or a second create", async () => {
    const first = await store.put(snapshotOf("n1", 1), 0);
    const second = await store.put(snapshotOf("n1", 2), first);
    expect(second).toBeGreaterThan(first);
    expect(await store.get("n1")).toMatchObject({ snapshot: { lastSeq: 2 }, revision: second });
    for (const stale of [first, 0]) {
      const err = await store.put(snapshotOf("n1", 3), stale).catch((e: unknown) => e);
      expect(isFencelineError(err, ErrorCode.Concurrency)).toBe(true);
    }
    expect((await store.get("n1"))!.snapshot.lastSeq).toBe(2);
  });

  it("creates a node again after its key was deleted (a delete marker is not a snapshot)", async () => {
    const kv = await new Kvm(env.nc).open(Buckets.nodes);
    await store.put(snapshotOf("n2", 1), 0);
    await kv.delete("n2");
    expect(await store.get("n2")).toBeNull();
    const revision = await store.put(snapshotOf("n2", 5), 0);
    expect(await store.get("n2")).toMatchObject({ snapshot: { lastSeq: 5 }, revision });
  });

  it("parses what it reads back: get throws on an invalid value (naming the key), listing leaves it out and reports it", async () => {
    const kv = await new Kvm(env.nc).open(Buckets.nodes);
    const invalid: string[] = [];
    const checked = createKvSnapshotStore(kv, env.nc, pipelined ? createJetStreamPipeline(env.nc) : undefined, {
      onInvalid: (key) => invalid.push(key),
    });
    await checked.put(snapshotOf("n3", 1), 0);
    await kv.put("n4", JSON.stringify({ ...snapshotOf("n4", 1), lastSeq: "one" }));
    const err = await checked.get("n4").catch((e: unknown) => e);
    expect(isFencelineError(err, ErrorCode.InvalidMessage)).toBe(true);
    expect((err as Error).message).toMatch(/FL_NODES "n4" is not a valid node snapshot[\s\S]*lastSeq/);
    const listed = (await checked.list()).map((s) => s.node);
    expect(listed).toContain("n3");
    expect(listed).not.toContain("n4");
    expect(invalid).toEqual(["n4"]);
    // A create over it fails: an invalid snapshot is never overwritten as if the node were new.
    const create = await checked.put(snapshotOf("n4", 2), 0).catch((e: unknown) => e);
    expect(isFencelineError(create, ErrorCode.Concurrency)).toBe(true);
    await kv.delete("n4");
  });
});
