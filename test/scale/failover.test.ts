import { afterEach, describe, expect, it } from "vitest";
import type { NatsConnection } from "@nats-io/transport-node";
import { DEMO_POLICY, type AuditRecord, type Command, type NodeEvent } from "@fenceline/contracts";
import { publishEvent } from "@fenceline/bus";
import { runEngine, type NodeSnapshot, type RunningEngine, type SnapshotStore } from "@fenceline/engine";
import { Streams, eventPartitions } from "@fenceline/streams";
import { buildScenario, SCRIPTS } from "../engine/scenario.js";
import {
  messageCount,
  readJson,
  readSnapshots,
  sleep,
  startJetStream,
  stoppedClock,
  testLog,
  waitFor,
  waitUntil,
  type TestJetStream,
} from "../engine/nats-helpers.js";

/**
 * Three engine instances share one fleet: the 16 partitions of FL_EVENTS are spread over them
 * by leases (FL_LEASES). A failure storm over 30 nodes (each through suspect → fencing →
 * remediating → rejoining → healthy, the three scripts of scenario.ts) is published in
 * rounds; mid-storm one instance dies in the middle of a batch (outputs published, snapshot not
 * saved, nothing acked). Its partitions must move to the two others within the lease time, and
 * the result must be exactly the uninterrupted fold: every event audited once, with the same
 * content, in per-node order, the same commands and the same final snapshots.
 */
const LEASE_MS = 3_000;
const NODES = 30;
const names = Array.from({ length: NODES }, (_, i) => (i % 5 === 4 ? `rack${i % 3}.node-${i}` : `node-${i}`));
const scripts = Object.fromEntries(names.map((name, i) => [name, Object.values(SCRIPTS)[i % 3]!]));
const scenario = buildScenario(DEMO_POLICY, scripts);

let env: TestJetStream | undefined;
const running: RunningEngine[] = [];
afterEach(async () => {
  for (const engine of running.splice(0)) await engine.stop().catch(() => {});
  await env?.stop();
  env = undefined;
});

type Instance = {
  id: string;
  engine: RunningEngine;
  nc: NatsConnection;
  killed: boolean;
  owned: number[];
  history: Array<{ at: number; owned: number[] }>;
};

describe("three engine instances, one killed mid-storm (real nats-server)", () => {
  it("moves the dead instance's partitions within the lease time and applies every event once, in order", async () => {
    env = await startJetStream();
    const { js, jsm } = env;
    const partitions = eventPartitions();
    const log = testLog("engine");
    let armed = false;

    const start = async (id: string): Promise<Instance> => {
      const nc = await env!.connect(`engine-${id}`);
      const self: Instance = { id, engine: undefined as unknown as RunningEngine, nc, killed: false, owned: [], history: [] };
      const never = () => new Promise<never>(() => {});
      // Instance "b" dies at its first snapshot save once armed: outputs out, nothing saved or acked.
      const snapshots = (inner: SnapshotStore): SnapshotStore => ({
        get: (node) => inner.get(node),
        list: () => inner.list(),
        async put(snapshot: NodeSnapshot, revision: number) {
          if (self.killed) return never();
          if (id === "b" && armed) {
            self.killed = true;
            void self.engine.stop();
            void nc.close();
            return never();
          }
          return inner.put(snapshot, revision);
        },
      });
      self.engine = await runEngine({
        nc,
        policy: DEMO_POLICY,
        log,
        clock: stoppedClock,
        instanceId: id,
        leaseMs: LEASE_MS,
        wrap: { snapshots },
        onPartitions: (owned) => {
          self.owned = owned;
          self.history.push({ at: Date.now(), owned });
        },
      });
      self.owned = self.engine.partitions();
      if (id !== "b") running.push(self.engine);
      return self;
    };

    const instances = [await start("a"), await start("b"), await start("c")];
    const [a, b, c] = instances as [Instance, Instance, Instance];
    // The partitions spread over the three: each owns some, none is owned twice, all are owned.
    await waitFor(
      "the partitions to spread over three instances",
      () => {
        const all = instances.flatMap((i) => i.owned);
        return (
          instances.every((i) => i.owned.length >= 4 && i.owned.length <= Math.ceil(partitions / 3)) &&
          new Set(all).size === partitions &&
          all.length === partitions
        );
      },
      3 * LEASE_MS,
    );

    // The storm, one event per node per round; "b" dies in round 5.
    const byNode = new Map<string, NodeEvent[]>();
    for (const event of scenario.events) byNode.set(event.node, [...(byNode.get(event.node) ?? []), event]);
    const published: number[] = [];
    const audited = () => messageCount(jsm, Streams.audit);
    let killedAt = 0;
    let bPartitions: number[] = [];
    for (let i = 0; i < scenario.events.length; i += NODES) {
      const round = i / NODES;
      if (round === 4) {
        bPartitions = [...b.owned];
        armed = true;
      }
      for (const event of scenario.events.slice(i, i + NODES)) published.push((await publishEvent(js, event)).seq);
      if (b.killed && !killedAt) killedAt = Date.now();
      await waitUntil(async () => (await audited()) >= published.length || (b.killed && !killedAt), 5_000);
      if (b.killed && !killedAt) killedAt = Date.now();
    }
    expect(published).toEqual(scenario.events.map((_, i) => i + 1));
    expect(b.killed).toBe(true);
    expect(bPartitions.length).toBeGreaterThan(0);

    // Every node ends where the uninterrupted fold ends.
    await waitFor(
      "every node's last event applied",
      async () => {
        const stored = await readSnapshots(env!.nc);
        return [...scenario.snapshots.values()].every((s) => stored.get(s.node)?.snapshot.lastSeq === s.lastSeq);
      },
      20_000,
    );

    // The dead instance's partitions moved to the survivors within the lease time (plus one
    // renewal round to notice, plus a second for the replay to start).
    const takenAt = Math.max(
      ...bPartitions.map((p) =>
        Math.min(...[a, c].map((s) => s.history.find((h) => h.at >= killedAt && h.owned.includes(p))?.at ?? Infinity)),
      ),
    );
    expect(takenAt - killedAt).toBeLessThanOrEqual(LEASE_MS + LEASE_MS / 3 + 1_000);
    const survivors = [...a.owned, ...c.owned];
    expect(new Set(survivors).size).toBe(partitions);
    expect(survivors).toHaveLength(partitions);

    // Let redeliveries (if any) come and be skipped before looking.
    await sleep(500);
    const audit = await readJson<AuditRecord>(jsm, Streams.audit);
    const commands = await readJson<Command>(jsm, Streams.commands);
    // No (node, seq) twice; every event has its record; each record is the uninterrupted fold's.
    const keys = audit.map((r) => `${r.node}#${r.seq}`);
    expect(keys.length - new Set(keys).size).toBe(0);
    expect(audit.map((r) => r.seq).sort((x, y) => x - y)).toEqual(published);
    expect([...audit].sort((x, y) => x.seq - y.seq)).toEqual(scenario.audit);
    // Per-node order: each node's records, in stream order, follow its events' order.
    for (const node of names) {
      const seqs = audit.filter((r) => r.node === node).map((r) => r.seq);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    }
    const ids = commands.map((x) => x.id);
    expect(ids.length - new Set(ids).size).toBe(0);
    expect([...commands].sort((x, y) => x.id.localeCompare(y.id))).toEqual([...scenario.commands].sort((x, y) => x.id.localeCompare(y.id)));
    const stored = await readSnapshots(env.nc);
    expect([...stored.values()].map((e) => e.snapshot).sort((x, y) => x.node.localeCompare(y.node))).toEqual(
      [...scenario.snapshots.values()].sort((x, y) => x.node.localeCompare(y.node)),
    );
  }, 60_000);
});
