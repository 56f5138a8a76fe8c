import { afterEach, describe, expect, it } from "vitest";
import type { NatsConnection } from "@nats-io/transport-node";
import { DEMO_POLICY, type AuditRecord, type Command, type NodeEvent } from "@fenceline/contracts";
import { publishEvent } from "@fenceline/bus";
import { runEngine, type NodeSnapshot, type OutputSink, type RunningEngine, type SnapshotStore } from "@fenceline/engine";
import { Streams } from "@fenceline/streams";
import { buildScenario, type Scenario } from "./scenario.js";
import {
  messageCount,
  readJson,
  readSnapshots,
  sleep,
  startJetStream,
  stoppedClock,
  testLog,
  waitUntil,
  type TestJetStream,
} from "./nats-helpers.js";

/**
 * Rule 2 of the architecture, on a real nats-server: the engine publishes its outputs, then
 * saves the snapshot, then acks; output ids derive from the event's sequence. So an engine
 * killed anywhere in that order and restarted (fresh cache, state from FL_NODES) ends with the
 * very audit trail and commands of an engine that never stopped, each stored once.
 *
 * The inputs are fixed and pre-computed (see scenario.ts): three nodes, each through suspect →
 * fencing → remediating → rejoining → healthy, with the command results and the timer.fired
 * events (at the due times the machine set) an actuator and the timer service would publish.
 * The engine's own timer service is idle (its clock never fires), so both runs see exactly the
 * same FL_EVENTS.
 *
 * Events are published in rounds, each as soon as the previous one was applied or the engine
 * died: after a kill, new events reach the new engine before the server redelivers those the
 * dead one held, so the engine must hold a node's later events back until its earlier ones are
 * applied; otherwise the earlier ones are skipped as "already applied" and lost. (The engine
 * rewinds a partition's consumer to its ack floor when it takes it over or a batch fails, so
 * they come again at once, in order: see packages/engine/src/nats/partition-worker.ts.)
 */
const scenario: Scenario = buildScenario(DEMO_POLICY);
const TOTAL = scenario.events.length;
/** Events are published in rounds of this many (two per node), waiting for each round to be applied. */
const ROUND = 6;
/** How long an unacknowledged event waits before the server redelivers it. */
const ACK_WAIT_MS = 1_000;

type KillPoint =
  /** (i) outputs published, snapshot not saved. */
  | "after-outputs"
  /** (ii) snapshot saved, event not acked. */
  | "after-snapshot"
  /** (iii) commands published, audit record not. */
  | "after-commands"
  /** Not a kill: saving the snapshot throws once (the handler naks; the same engine goes on). */
  | "transient-failure";

let env: TestJetStream | undefined;
afterEach(async () => {
  await env?.stop();
  env = undefined;
});

/** `dying`: struck, finishing the sends before its kill point; nothing else it does counts any more. */
type Instance = { engine: RunningEngine; nc: NatsConnection; killed: boolean; dying: boolean };

/**
 * Runs the scenario with `runEngine`, killing the engine at the points of `plan` (event seq →
 * where). A kill stops the engine and closes its connection while the handler never returns, so
 * the event is neither acked nor nak'ed: the server redelivers it after the ack wait, to a new
 * engine started at once on the same server.
 */
async function runScenario(plan: Map<number, KillPoint>) {
  env = await startJetStream({ ackWaitMs: ACK_WAIT_MS });
  const { js, jsm, connect } = env;
  const log = testLog("engine");
  const struck = new Set<number>();
  let instances = 0;
  let current: Instance;

  const strikes = (seq: number, point: KillPoint) => {
    if (plan.get(seq) !== point || struck.has(seq)) return false;
    struck.add(seq);
    return true;
  };
  /**
   * The engine saves one snapshot per node and batch (the last one), so a kill point "at event
   * s" strikes at the save that covers s: of s's node, above the last saved sequence, up to s.
   */
  const saved = new Map<string, number>();
  const strikesSave = (snapshot: NodeSnapshot, point: KillPoint) => {
    for (const [seq, p] of plan) {
      if (p !== point || struck.has(seq) || scenario.events[seq - 1]!.node !== snapshot.node) continue;
      if (seq > (saved.get(snapshot.node) ?? 0) && seq <= snapshot.lastSeq) return strikes(seq, point);
    }
    return false;
  };
  const start = async (): Promise<Instance> => {
    instances += 1;
    const nc = await connect(`engine-${instances}`);
    const self: Instance = { engine: undefined as unknown as RunningEngine, nc, killed: false, dying: false };
    const never = () => new Promise<never>(() => {});
    /** The process dies here: nothing after this point runs, nothing is settled. */
    const kill = (): Promise<never> => {
      self.killed = true;
      void self.engine.stop();
      void nc.close();
      return never();
    };
    // A dead process does nothing more (its other partitions' batches stop where they are).
    // "after-commands" at event s: everything sent before s's audit record goes out, then the
    // process dies. From the strike on, its other batches stop where they are (`dying`): no
    // second kill point can strike in the same process while those sends are out.
    const outputs = (inner: OutputSink): OutputSink => ({
      async publish(list) {
        if (self.killed || self.dying) return never();
        const at = list.findIndex((o) => o.type === "audit" && strikes(o.record.seq, "after-commands"));
        if (at < 0) return inner.publish(list);
        self.dying = true;
        await inner.publish(list.slice(0, at));
        return kill();
      },
    });
    const snapshots = (inner: SnapshotStore): SnapshotStore => ({
      get: (node) => inner.get(node),
      list: () => inner.list(),
      async put(snapshot: NodeSnapshot, revision: number) {
        if (self.killed || self.dying) return never();
        if (strikesSave(snapshot, "after-outputs")) return kill();
        if (strikesSave(snapshot, "transient-failure")) throw new Error(`injected: KV unavailable at event ${snapshot.lastSeq}`);
        const stored = await inner.put(snapshot, revision);
        if (self.killed || self.dying) return never();
        const killNow = strikesSave(snapshot, "after-snapshot");
        saved.set(snapshot.node, Math.max(saved.get(snapshot.node) ?? 0, snapshot.lastSeq));
        if (killNow) return kill();
        return stored;
      },
    });
    // The same instance id each time, as a restarted process has: its partitions come back at once.
    self.engine = await runEngine({
      nc,
      policy: DEMO_POLICY,
      log,
      clock: stoppedClock,
      instanceId: "engine",
      wrap: { outputs, snapshots },
    });
    return self;
  };

  const published: number[] = [];
  const publish = async (event: NodeEvent) => {
    const ack = await publishEvent(js, event);
    expect(ack.duplicate).toBe(false);
    published.push(ack.seq);
  };
  const audited = () => messageCount(jsm, Streams.audit);

  current = await start();
  for (let i = 0; i < TOTAL; i += ROUND) {
    for (const event of scenario.events.slice(i, i + ROUND)) await publish(event);
    // Wait for the round to be applied, or for the engine to die; then go on at once, so the
    // next round reaches the new engine before the server redelivers what the dead one held.
    await waitUntil(async () => current.killed || (await audited()) >= published.length, 5_000);
    if (current.killed) current = await start();
  }
  // Until every node's snapshot has its last event (an engine that drops an event never gets
  // there: the comparisons below then show what is missing).
  const finished = async () => {
    if (current.killed) current = await start();
    const stored = await readSnapshots(env!.nc);
    return [...scenario.snapshots.values()].every((s) => stored.get(s.node)?.snapshot.lastSeq === s.lastSeq);
  };
  await waitUntil(finished, 10_000);
  // Let anything still pending be redelivered and skipped before looking.
  await sleep(ACK_WAIT_MS + 200);
  if (current.killed) current = await start();
  await current.engine.stop();

  expect(published).toEqual(scenario.events.map((_, i) => i + 1));
  return {
    struck,
    instances,
    events: await messageCount(jsm, Streams.events),
    audit: await readJson<AuditRecord>(jsm, Streams.audit),
    commands: await readJson<Command>(jsm, Streams.commands),
    snapshots: await readSnapshots(env.nc),
  };
}

/** What two audit trails are compared on. */
const digest = (records: AuditRecord[]) =>
  [...records]
    .sort((a, b) => a.seq - b.seq)
    .map((r) => ({
      node: r.node,
      seq: r.seq,
      from: r.from,
      to: r.to,
      epoch: r.epoch,
      reason: r.reason,
      commands: r.commands.map((c) => `${c.id} ${c.kind}`),
    }));

const bySeq = (records: AuditRecord[]) => [...records].sort((x, y) => x.seq - y.seq);
/** Commands in the order the engine emits them: by causing event, then position in its list. */
const byCause = (commands: Command[]) => [...commands].sort((x, y) => x.causedBy - y.causedBy || x.id.localeCompare(y.id));
/** Each node's records or commands, in the order given. */
const perNode = <T extends { node: string }, K>(list: T[], key: (item: T) => K) => {
  const out = new Map<string, K[]>();
  for (const item of list) out.set(item.node, [...(out.get(item.node) ?? []), key(item)]);
  return Object.fromEntries([...out].sort(([x], [y]) => x.localeCompare(y)));
};
const perNodeSeqs = (records: AuditRecord[]) => perNode(records, (r) => r.seq);
const perNodeIds = (commands: Command[]) => perNode(commands, (c) => c.id);

const duplicates = (ids: string[]) => ids.filter((id, i) => ids.indexOf(id) !== i);

/**
 * Where the kills strike, picked from the scenario by what the events do. Rounds are 6 events
 * (two per node). A kill leaves its round's later events with the dead engine too, and the next
 * round reaches the new engine before they are redelivered: that round's events must wait for
 * their nodes' earlier ones. Round 3 has no kill so that round 4's transient failure is a first
 * delivery; round 5 has two kills, the second while the first one's events are redelivered.
 */
function killPlan(): Map<number, KillPoint> {
  const at = (node: string, nth: number) => scenario.audit.filter((a) => a.node === node)[nth]!.seq;
  return new Map<number, KillPoint>([
    [at("node-a", 0), "after-outputs"], // round 1: node-a's first event, its snapshot does not exist yet
    [at("node-b.rack1", 3), "after-commands"], // round 2: slot granted: taint.add + watchdog.stop, no audit
    [at("node-c", 6), "transient-failure"], // round 4: the safe time passed → majority check; node-c's next event is in the same round
    [at("node-a", 8), "after-outputs"], // round 5: workloads gone → out-of-service taint removed
    [at("node-b.rack1", 9), "after-snapshot"], // round 5: re-provision, saved, not acked
    [at("node-c", 10), "after-commands"], // round 6: OutOfServiceTaint: taint.add + workloads.await-gone
    [at("node-b.rack1", 13), "after-snapshot"], // round 7: the last event, saved and never acked
  ]);
}

describe("crash recovery (real nats-server)", () => {
  it("the scenario drives each node through the whole lifecycle", () => {
    for (const node of ["node-a", "node-b.rack1", "node-c"]) {
      const phases = scenario.audit.filter((a) => a.node === node).map((a) => a.to.split(".")[0]);
      expect(new Set(phases)).toEqual(new Set(["healthy", "suspect", "fencing", "remediating", "down", "rejoining"]));
      expect(scenario.snapshots.get(node)!.path).toBe("healthy");
    }
    const plan = killPlan();
    expect(plan.size).toBe(7);
    for (const [seq, point] of plan) if (point === "after-commands") expect(scenario.audit[seq - 1]!.commands.length).toBeGreaterThan(0);
  });

  it("an engine killed between publishing, saving and acking ends with the uninterrupted engine's audit and commands, once each", async () => {
    const a = await runScenario(new Map());
    await env!.stop();
    env = undefined;
    const b = await runScenario(killPlan());

    // Run A is the in-memory fold. Nodes in different partitions are published concurrently, so
    // only each node's own records are in stream order; across nodes, compare by sequence.
    expect(a.events).toBe(TOTAL);
    expect(bySeq(a.audit)).toEqual(scenario.audit);
    expect(byCause(a.commands)).toEqual(byCause(scenario.commands));
    for (const run of [a, b]) {
      expect(perNodeSeqs(run.audit)).toEqual(perNodeSeqs(bySeq(run.audit)));
      expect(perNodeIds(run.commands)).toEqual(perNodeIds(byCause(run.commands)));
    }

    // Run B: same inputs, same audit trail (on the compared fields, and whole), same commands.
    expect(b.events).toBe(TOTAL);
    expect(digest(b.audit)).toEqual(digest(a.audit));
    expect(bySeq(b.audit)).toEqual(bySeq(a.audit));
    expect(duplicates(b.audit.map((r) => r.id))).toEqual([]);
    expect(b.audit).toHaveLength(TOTAL);

    // FL_COMMANDS is a work queue, but no actuator runs here: every command is still in it, once.
    expect(duplicates(b.commands.map((c) => c.id))).toEqual([]);
    expect(b.commands).toHaveLength(scenario.commands.length);
    const byId = (list: Command[]) => [...list].sort((x, y) => x.id.localeCompare(y.id));
    expect(byId(b.commands)).toEqual(byId(a.commands));

    // Every planned kill happened, and each killed engine was replaced.
    const plan = killPlan();
    expect(b.struck).toEqual(new Set(plan.keys()));
    expect(b.instances).toBe(1 + [...plan.values()].filter((p) => p !== "transient-failure").length);
    expect(a.instances).toBe(1);

    // And the same final snapshots.
    const snapshotsOf = (m: Map<string, { snapshot: NodeSnapshot }>) => [...m.values()].map((e) => e.snapshot);
    expect(snapshotsOf(b.snapshots)).toEqual(snapshotsOf(a.snapshots));
    expect(snapshotsOf(a.snapshots)).toEqual([...scenario.snapshots.values()]);
  }, 60_000);
});
