import { afterEach, describe, expect, it } from "vitest";
import { Kvm } from "@nats-io/kv";
import { jetstreamManager } from "@nats-io/jetstream";
import { checkEventPartitions, createLeaseManager, leaseKey, type LeaseManager } from "@fenceline/engine";
import { Buckets, Streams, eventPartitionTransform } from "@fenceline/streams";
import { startJetStream, testLog, type TestJetStream } from "./nats-helpers.js";

/** FL_LEASES values are parsed when read back, like every message (real nats-server). */
let env: TestJetStream | undefined;
const managers: LeaseManager[] = [];
afterEach(async () => {
  for (const m of managers.splice(0)) await m.stop().catch(() => {});
  await env?.stop();
  env = undefined;
});

describe("FL_LEASES read back", () => {
  it("an invalid lease or instance value counts as absent: its partition is claimed (compare-and-set on its revision)", async () => {
    env = await startJetStream();
    const kv = await new Kvm(env.nc).open(Buckets.leases);
    await kv.put(leaseKey(0), JSON.stringify({ owner: "ghost", expiresAt: "never" }));
    await kv.put(leaseKey(1), "{not json");
    await kv.put("i.ghost", JSON.stringify({ id: "ghost", incarnation: "x", expiresAt: Number.MAX_SAFE_INTEGER, extra: 1 }));
    const claimed: number[] = [];
    const manager = createLeaseManager({
      nc: env.nc,
      kv,
      instanceId: "engine-a",
      partitions: 2,
      leaseMs: 3_000,
      log: testLog("leases"),
      onClaim: async (ps) => void claimed.push(...ps),
      onLose: async () => {},
    });
    managers.push(manager);
    await manager.start();
    // The ghost instance is not counted as live (else engine-a would aim for one partition).
    expect(claimed.sort()).toEqual([0, 1]);
    expect(JSON.parse((await kv.get(leaseKey(0)))!.string())).toMatchObject({ owner: "engine-a" });
  });

  it("the partition count is FL_EVENTS's: an engine with another count, or a stream without the transform, is refused", async () => {
    env = await startJetStream();
    const jsm = await jetstreamManager(env.nc);
    await expect(checkEventPartitions(jsm, 16)).resolves.toBeUndefined();
    await expect(checkEventPartitions(jsm, 8)).rejects.toThrow(
      /^FL_EVENTS is split into 16 partitions but this engine uses 8: set FENCELINE_PARTITIONS=16/,
    );
    await jsm.streams.update(Streams.events, { subject_transform: eventPartitionTransform(4) });
    await expect(checkEventPartitions(jsm, 16)).rejects.toThrow(/split into 4 partitions/);
    // A stream of an older Fenceline: stored what publishers partitioned themselves.
    await jsm.streams.update(Streams.events, { subjects: ["fl.evt.>"], subject_transform: { src: "", dest: "" } });
    await expect(checkEventPartitions(jsm, 16)).rejects.toThrow(/has no partitioning subject transform/);
  });
});
