import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Command, type DeadLetter, NodeEvent, Policy } from "@fenceline/contracts";
import { Streams, Subjects } from "@fenceline/streams";
import {
  readNodes,
  readStream,
  sleep,
  startRoleControlPlane,
  startSecureServer,
  startTestAgent,
  waitFor,
  type SecureServer,
  type TestAgent,
} from "./harness.js";

/**
 * A node being fenced cannot cancel (or fake-confirm) its fencing by replaying old messages,
 * on a real nats-server with the generated permissions and the control plane split by role:
 * - its agent replays heartbeats of its previous boot and of its current one: the detector
 *   dead-letters them as "stale" — no boot.changed (which would confirm fencing by reboot), no
 *   heartbeat.resumed (which would drop the safe time);
 * - command results and timer events of before the fencing, and commands of the previous
 *   epoch, are published again with new message ids (so JetStream's dedup does not hide them):
 *   the engine and the actuators ignore them and the node's snapshot does not change.
 */
const NODES = ["node-1", "node-2", "node-3"];
const POLICY = Policy.parse({
  version: "replay-test",
  heartbeat: { intervalMs: 200, timeoutMs: 1_000 },
  unhealthyDurationMs: 1_000,
  // A long safe time (≈ 34 s) and command deadline: node-1 stays in fencing for the whole test.
  agent: { controlPlaneTimeoutMs: 30_000, peerRoundMs: 500, watchdogTimeoutMs: 1_500, marginMs: 1_500 },
  fleet: { retryMs: 500 },
  commandTimeoutMs: 120_000,
});

let lab: SecureServer;
let control: Awaited<ReturnType<typeof startRoleControlPlane>>;
let agents: TestAgent[] = [];
let admin: NatsConnection;
/** Every heartbeat node-1 sent, byte for byte (what an attacker on its link could record). */
const recorded: Array<{ data: Uint8Array; bootId: string; incarnation: number; seq: number }> = [];
/** Every command sent for node-1, byte for byte. */
const commands: Array<{ subject: string; data: Uint8Array; command: Command }> = [];
/**
 * Every event published for node-1, stored or not: a result whose id JetStream already holds
 * (a refused replayed command answers with its original result id) is deduplicated, not lost
 * to a core subscriber.
 */
const published: NodeEvent[] = [];

beforeAll(async () => {
  lab = await startSecureServer(NODES);
  admin = await lab.connectAs("admin");
  admin.subscribe(Subjects.heartbeat("node-1"), {
    callback: (err, msg) => {
      if (err) return;
      const hb = msg.json<{ bootId: string; incarnation: number; seq: number }>();
      recorded.push({ data: msg.data.slice(), bootId: hb.bootId, incarnation: hb.incarnation, seq: hb.seq });
    },
  });
  admin.subscribe(Subjects.commandAll, {
    callback: (err, msg) => {
      if (err) return;
      const command = Command.safeParse(msg.json());
      if (command.success && command.data.node === "node-1")
        commands.push({ subject: msg.subject, data: msg.data.slice(), command: command.data });
    },
  });
  admin.subscribe(Subjects.event("node-1"), {
    callback: (err, msg) => {
      const event = err ? null : NodeEvent.safeParse(msg.json());
      if (event?.success) published.push(event.data);
    },
  });
  control = await startRoleControlPlane(lab, { policy: POLICY, nodes: NODES });
  agents = await Promise.all(
    NODES.map((node) => startTestAgent(lab, node, { intervalMs: POLICY.heartbeat.intervalMs, bootId: `${node}-boot-a` })),
  );
});

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await control?.stop();
  await lab?.stop();
});

type Snapshot = { path: string; context: Record<string, unknown> & { epoch: number } };
const snapshotOf = async (node: string) => (await readNodes(admin)).get(node)?.value as Snapshot | undefined;
const events = async (node: string) =>
  (await readStream(admin, Streams.events))
    .filter((m) => m.subject === Subjects.storedEvent(node))
    .map((m) => ({ seq: m.seq, raw: m.data, event: NodeEvent.parse(m.json()) }));

describe("replayed messages cannot cancel fencing (real nats-server, role users)", () => {
  it("replayed heartbeats, results, timers and commands of before the fencing change nothing", async () => {
    await waitFor("every node healthy", async () => (await Promise.all(NODES.map(snapshotOf))).every((s) => s?.path === "healthy"));

    // node-1 reboots once (boot a → boot b, its agent's incarnation 1 → 2): rejoined, healthy.
    const node1 = agents[0]!;
    node1.bootId = "node-1-boot-b";
    node1.incarnation = 2;
    node1.seq = 0;
    await waitFor("the reboot seen", async () => (await events("node-1")).some((e) => e.event.type === "boot.changed"));
    await waitFor("node-1 healthy after its reboot", async () => (await snapshotOf("node-1"))?.path === "healthy", 20_000);

    // node-1 hangs: silent, and its agent no longer answers. The engine fences it (epoch 1).
    await node1.stop();
    await waitFor("node-1 fencing", async () => (await snapshotOf("node-1"))?.path.startsWith("fencing") === true, 20_000);
    await waitFor("the watchdog.stop command of epoch 1", () =>
      commands.some((c) => c.command.kind === "watchdog.stop" && c.command.epoch === 1),
    );
    await sleep(300);
    const before = (await snapshotOf("node-1"))!;
    expect(before.context.epoch).toBe(1);
    const history = await events("node-1");
    const lastSeq = history.at(-1)!.seq;

    // 1. Heartbeats, replayed by the node's own agent user (the only one that may publish them).
    const fromBootA = recorded.filter((r) => r.bootId === "node-1-boot-a");
    const fromBootB = recorded.filter((r) => r.bootId === "node-1-boot-b");
    expect(fromBootA.length).toBeGreaterThan(0);
    expect(fromBootB.length).toBeGreaterThan(0);
    const replays = [fromBootA.at(-1)!, fromBootA[0]!, fromBootB.at(-1)!, fromBootB[0]!];
    for (const r of replays) node1.nc.publish(Subjects.heartbeat("node-1"), r.data);

    // 2. Results and timer events of before the fencing, and commands of epoch 0, published
    //    again (new message ids) by a publisher that may: the admin (as a broken or compromised
    //    control-plane component would).
    const js = jetstream(admin);
    const oldResults = history.filter((e) => e.event.type === "command.result");
    const oldTimers = history.filter((e) => e.event.type === "timer.fired");
    expect(oldResults.length).toBeGreaterThan(0);
    expect(oldTimers.length).toBeGreaterThan(0);
    for (const [i, e] of [...oldResults, ...oldTimers].entries())
      await js.publish(Subjects.event("node-1"), e.raw, { msgID: `replay-${i}` });
    // A forged success of this epoch's watchdog.stop from an older epoch's point of view.
    const forgedOld = {
      ...oldResults[0]!.event,
      id: "forged-old-epoch",
      data: { commandId: "forged", kind: "watchdog.stop", epoch: 0, ok: true },
    };
    await js.publish(Subjects.event("node-1"), JSON.stringify(forgedOld), { msgID: forgedOld.id });

    // Every replay was handled: the engine applied (and ignored) the republished events, and
    // the detector dead-lettered the heartbeats as stale.
    const republished = oldResults.length + oldTimers.length + 1;
    await waitFor("the republished events applied", async () => {
      const audit = (await readStream(admin, Streams.audit))
        .map((m) => m.json<{ node: string; seq: number }>())
        .filter((a) => a.node === "node-1");
      return audit.filter((a) => a.seq > lastSeq).length >= republished;
    });
    await waitFor("four stale heartbeats dead-lettered", async () => {
      const letters = (await readStream(admin, Streams.deadLetters)).map((m) => m.json<DeadLetter>());
      return letters.filter((l) => l.reason === "stale" && l.subject === Subjects.heartbeat("node-1")).length >= replays.length;
    });
    const letters = (await readStream(admin, Streams.deadLetters))
      .filter((m) => m.subject === "fl.dlq.heartbeat-detector")
      .map((m) => m.json<DeadLetter>());
    expect(letters.map((l) => l.error)).toEqual([
      "stale heartbeat: incarnation 1 is older than the node's current 2 (boot node-1-boot-b)",
      "stale heartbeat: incarnation 1 is older than the node's current 2 (boot node-1-boot-b)",
      expect.stringMatching(/^stale heartbeat: seq \d+ of incarnation 2 is not above the last one heard \(\d+\)$/),
      expect.stringMatching(/^stale heartbeat: seq 0 of incarnation 2 is not above the last one heard \(\d+\)$/),
    ]);

    // No event the detector produced for the replays: no boot.changed, resumed or joined.
    const after = await events("node-1");
    const fresh = after.filter((e) => e.seq > lastSeq && e.event.source === "heartbeat-detector");
    expect(fresh.map((e) => e.event.type)).toEqual([]);

    // The node is still being fenced, in the same epoch, with the same context.
    const now = (await snapshotOf("node-1"))!;
    expect(now.path).toBe(before.path);
    expect(now.context).toEqual(before.context);

    // 3. The commands of epoch 0 (the reboot's re-provisioning, its taint removal...) published
    //    again: the actuators refuse them (stale epoch) and carry out nothing.
    const provisionedBefore = control.provisioned.length;
    const taintsBefore = JSON.stringify(control.cluster.node("node-1"));
    const old = commands.filter((c) => c.command.epoch === 0);
    expect(old.map((c) => c.command.kind)).toContain("reprovision");
    const mark = published.length;
    for (const [i, c] of old.entries()) await js.publish(c.subject, c.data, { msgID: `replayed-command-${i}` });
    const refusals = () =>
      published.slice(mark).filter((e) => e.type === "command.result" && old.some((c) => c.command.id === e.data.commandId));
    await waitFor("every replayed command refused", () => refusals().length === old.length);
    for (const r of refusals()) expect(r.data).toMatchObject({ ok: false, epoch: 0, reason: "stale epoch 0 < 1: refused" });
    expect(JSON.stringify(control.cluster.node("node-1"))).toBe(taintsBefore);
    expect(control.provisioned.length).toBe(provisionedBefore);
    await sleep(300);
    expect((await snapshotOf("node-1"))!.context).toEqual(before.context);
    expect((await snapshotOf("node-1"))!.path).toBe(before.path);

    // 4. The real reboot still counts: boot c (incarnation 3) confirms the fencing.
    agents[0] = await startTestAgent(lab, "node-1", { intervalMs: POLICY.heartbeat.intervalMs, bootId: "node-1-boot-c", incarnation: 3 });
    await waitFor(
      "node-1 out of fencing after its real reboot",
      async () => !(await snapshotOf("node-1"))!.path.startsWith("fencing"),
      20_000,
    );
    const reboot = (await events("node-1")).find((e) => e.event.type === "boot.changed" && e.seq > lastSeq);
    expect(reboot?.event.data).toEqual({ previousBootId: "node-1-boot-b", bootId: "node-1-boot-c" });
  });
});
