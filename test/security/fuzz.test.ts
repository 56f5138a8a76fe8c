import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  ACTUATOR_OF,
  Command,
  createEvent,
  DeadLetter,
  DEMO_POLICY,
  Heartbeat,
  HeartbeatAck,
  MAX_ACK_BYTES,
  MAX_MESSAGE_BYTES,
  NODE_EVENT_TYPES,
  NodeEvent,
  NodeName,
  nodeFromToken,
  parseMessage,
  type Actuator,
} from "@fenceline/contracts";
import { Buckets, Streams, Subjects } from "@fenceline/streams";
import { agentUser } from "@fenceline/streams";
import {
  readNodes,
  readStream,
  startRoleControlPlane,
  startSecureServer,
  startTestAgent,
  waitFor,
  type SecureServer,
  type TestAgent,
} from "./harness.js";

/**
 * Rule 4 under fire: random and malformed payloads on every subject Fenceline reads, against a
 * real nats-server (generated permissions) and the real engine, heartbeat detector, node state
 * service, actuators and agent transport, each on its own user. Every input is dead-lettered on
 * fl.dlq.<reader> with the reason the validation gives, no process stops, and FL_NODES does not
 * change (same values, same revisions) until a valid input is sent at the end — which is applied.
 */
const NODES = ["node-1", "node-2", "node-3"];
const POLICY = DEMO_POLICY;
const RUNS = { seed: 424242, numRuns: 150, endOnFailure: true } as const;
const encoder = new TextEncoder();

type Letter = { dlq: string; record: DeadLetter };
const letters: Letter[] = [];

let lab: SecureServer;
let control: Awaited<ReturnType<typeof startRoleControlPlane>>;
let agents: TestAgent[] = [];
let admin: NatsConnection;
let baseline: Map<string, { value: unknown; revision: number }>;

beforeAll(async () => {
  lab = await startSecureServer(NODES);
  admin = await lab.connectAs("admin");
  admin.subscribe(Subjects.deadLetterAll, {
    callback: (err, msg) => {
      if (!err) letters.push({ dlq: msg.subject, record: DeadLetter.parse(msg.json()) });
    },
  });
  control = await startRoleControlPlane(lab, { policy: POLICY, nodes: NODES });
  agents = await Promise.all(NODES.map((node) => startTestAgent(lab, node, { intervalMs: POLICY.heartbeat.intervalMs })));
  await waitFor("every node healthy", async () => {
    const nodes = await readNodes(admin);
    return NODES.every((n) => (nodes.get(n)?.value as { path?: string } | undefined)?.path === "healthy");
  });
  await waitFor("the engine idle", async () => (await readStream(admin, Streams.commands)).length === 0);
  baseline = await readNodes(admin);
});

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await control?.stop();
  await lab?.stop();
});

// ---------------------------------------------------------------------------------------------
// Payload generators

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Paths to every object member of a JSON value (arrays are left alone). */
function memberPaths(value: Json, prefix: string[] = []): string[][] {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [];
  return Object.entries(value).flatMap(([k, v]) => [[...prefix, k], ...memberPaths(v, [...prefix, k])]);
}

function containerAt(root: Json, path: string[]): Record<string, Json> {
  let at = root as Record<string, Json>;
  for (const key of path) at = at[key] as Record<string, Json>;
  return at;
}

/** One mutation of a valid message: a member replaced by another value, removed, or an extra member added. */
const mutation = fc.record({
  op: fc.constantFrom("replace", "replace", "delete", "add"),
  pick: fc.nat(),
  key: fc.string({ minLength: 1, maxLength: 12 }),
  value: fc.oneof(
    fc.integer({ min: -5, max: 5 }),
    fc.double({ noNaN: true }),
    fc.string({ maxLength: 8 }),
    fc.boolean(),
    fc.constant(null),
    fc.array(fc.integer(), { maxLength: 2 }),
    fc.dictionary(fc.string({ maxLength: 4 }), fc.integer(), { maxKeys: 2 }),
    fc.string({ minLength: 300, maxLength: 700 }),
    fc.constant(-1),
    fc.constant(1.5),
    fc.constant(""),
  ),
});

function mutate(template: Json, m: { op: string; pick: number; key: string; value: unknown }): Json {
  const copy = structuredClone(template);
  const paths = memberPaths(copy);
  const path = paths[m.pick % paths.length]!;
  const parent = containerAt(copy, path.slice(0, -1));
  const last = path.at(-1)!;
  if (m.op === "replace") parent[last] = m.value as Json;
  else if (m.op === "delete") delete parent[last];
  else {
    const target =
      typeof parent[last] === "object" && parent[last] !== null && !Array.isArray(parent[last])
        ? (parent[last] as Record<string, Json>)
        : parent;
    target[`x-${m.key}`] = m.value as Json;
  }
  return copy;
}

/** A payload beyond the 64 KiB limit: a valid message with one string padded. */
const oversize = (template: Json) =>
  fc.integer({ min: MAX_MESSAGE_BYTES + 1, max: MAX_MESSAGE_BYTES + 8_192 }).map((size) => {
    const text = JSON.stringify(template);
    return encoder.encode(`${text.slice(0, -1)},"pad":"${"x".repeat(Math.max(0, size - text.length - 9))}"}`);
  });

const bytes = fc.uint8Array({ maxLength: 300 });
const anyJson = fc.json({ maxDepth: 3 }).map((text) => encoder.encode(text));
const json = (value: unknown) => encoder.encode(JSON.stringify(value));
const otherNode = (node: string) => NODES.find((n) => n !== node)!;

/** Any payload: raw bytes, any JSON, a mutated template, an oversize one, or an extra generator. */
function payloads(templates: Json[], extra: Array<fc.Arbitrary<Uint8Array>> = []): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { arbitrary: bytes, weight: 2 },
    { arbitrary: anyJson, weight: 2 },
    { arbitrary: fc.tuple(fc.constantFrom(...templates), mutation).map(([t, m]) => json(mutate(t, m))), weight: 6 },
    { arbitrary: fc.constantFrom(...templates).chain(oversize), weight: 1 },
    ...extra.map((arbitrary) => ({ arbitrary, weight: 2 })),
  );
}

// Valid templates (each would be accepted as it is).
const now = Date.now();
const eventTemplates = (node: string): Json[] =>
  [
    createEvent("heartbeat.missed", { id: "t1", node, at: now, source: "heartbeat-detector", data: { lastSeenAt: now - 1, bootId: "b" } }),
    createEvent("boot.changed", { id: "t2", node, at: now, source: "heartbeat-detector", data: { previousBootId: "a", bootId: "b" } }),
    createEvent("signal.unhealthy", { id: "t3", node, at: now, source: "serf", data: { signal: "serf", since: now } }),
    createEvent("timer.fired", { id: "t4", node, at: now, source: "timer", data: { timer: "safeTime", due: now } }),
    createEvent("command.result", {
      id: "t5",
      node,
      at: now,
      source: "actuator:agent",
      data: { commandId: "c", kind: "watchdog.stop", epoch: 1, ok: true },
    }),
    createEvent("operator.reset", { id: "t6", node, at: now, source: "operator:x", data: { reason: "fixed" } }),
    createEvent("node.joined", {
      id: "t7",
      node,
      at: now,
      source: "heartbeat-detector",
      data: { bootId: "b", incarnation: 9, checksums: { app: "1" } },
    }),
  ] as unknown as Json[];

const commandTemplates = (node: string): Json[] => {
  const base = { v: 1, id: "c1", node, epoch: 0, issuedAt: now, deadline: now + 60_000, causedBy: 1 };
  return [
    { ...base, kind: "taint.add", params: { taint: { key: "fenceline.io/fencing", effect: "NoSchedule" } } },
    { ...base, kind: "pods.delete", params: {} },
    { ...base, kind: "watchdog.stop", params: { reason: "fencing", bootId: "b" } },
    { ...base, kind: "reprovision", params: { hostGroup: "default", reason: "rebooted", attempt: 1, ticket: 1 } },
    { ...base, kind: "slot.acquire", params: { controlPlane: false } },
  ];
};

/**
 * A heartbeat of an earlier agent start (incarnation 0; the agents run incarnation 1). Mutations
 * that keep it well-formed keep it stale, unless they raise its incarnation: those inputs are
 * valid heartbeats, which would lock the real agent out (its seq would then be "stale"), and are
 * not fuzz cases.
 */
const heartbeatTemplate = (node: string): Json => ({
  v: 1,
  node,
  bootId: `boot-${node}-1`,
  incarnation: 0,
  seq: 5,
  sentAt: now,
  checksums: { app: "1" },
});

// ---------------------------------------------------------------------------------------------
// Oracles: the reason each reader must give (null: the input is valid — not a fuzz case).

function eventReason(subject: string, data: Uint8Array): DeadLetter["reason"] | null {
  const parsed = parseMessage(NodeEvent, data, { knownTypes: NODE_EVENT_TYPES });
  if (!parsed.ok) return parsed.reason;
  return parsed.value.node !== nodeFromToken(subject.split(".").at(-1)!) ? "forbidden" : null;
}

function commandReason(subject: string, data: Uint8Array): DeadLetter["reason"] | null {
  const parsed = parseMessage(Command, data);
  if (!parsed.ok) return parsed.reason;
  const [, , actuator, token] = subject.split(".");
  return parsed.value.node !== nodeFromToken(token!) || ACTUATOR_OF[parsed.value.kind] !== actuator ? "forbidden" : null;
}

function agentCommandReason(node: string, data: Uint8Array): DeadLetter["reason"] | null {
  const parsed = parseMessage(Command, data);
  if (!parsed.ok) return parsed.reason;
  return parsed.value.node !== node || parsed.value.kind !== "watchdog.stop" ? "forbidden" : null;
}

function heartbeatReason(node: string, data: Uint8Array): DeadLetter["reason"] | null {
  const parsed = parseMessage(Heartbeat, data);
  if (!parsed.ok) return parsed.reason;
  if (parsed.value.node !== node) return "forbidden";
  // Certainly stale: an earlier incarnation, or the very first heartbeat of the current one.
  const hb = parsed.value;
  return hb.incarnation < 1 || (hb.incarnation === 1 && hb.seq === 0) ? "stale" : null;
}

// ---------------------------------------------------------------------------------------------

/** Sends one input and waits for its dead letter on fl.dlq.<source>; checks what it says. */
async function expectDeadLetter(source: string, subject: string, data: Uint8Array, reason: DeadLetter["reason"], send: () => unknown) {
  const dlq = Subjects.deadLetter(source);
  const count = letters.filter((l) => l.dlq === dlq && l.record.subject === subject).length;
  await send();
  await waitFor(
    `a dead letter on ${dlq} for ${subject}`,
    () => letters.filter((l) => l.dlq === dlq && l.record.subject === subject).length > count,
    5_000,
  );
  const letter = letters.filter((l) => l.dlq === dlq && l.record.subject === subject).at(-1)!.record;
  expect(letter.reason).toBe(reason);
  expect(letter.error.length).toBeGreaterThan(0);
  expect(letter.payloadBytes).toBe(data.byteLength);
}

const nodeArb = fc.constantFrom(...NODES);

describe("fuzzing every subject Fenceline reads (real nats-server, real processes)", () => {
  it("fl.evt.<node>: the engine dead-letters every invalid event", async () => {
    const js = jetstream(admin);
    const input = nodeArb.chain((node) =>
      fc.tuple(
        fc.constant(node),
        payloads(eventTemplates(node), [
          // Valid events about another node, and unknown types in a valid envelope.
          fc.constantFrom(...eventTemplates(otherNode(node))).map(json),
          fc
            .string({ minLength: 1, maxLength: 20 })
            .filter((t) => !(NODE_EVENT_TYPES as string[]).includes(t))
            .map((type) => json({ ...(eventTemplates(node)[0] as object), type })),
        ]),
      ),
    );
    await fc.assert(
      fc.asyncProperty(input, async ([node, data]) => {
        const subject = Subjects.event(node);
        const reason = eventReason(subject, data);
        fc.pre(reason !== null);
        // Published on fl.evt.<node>; the engine received (and dead-letters) it as stored, fl.evt.<p>.<node>.
        await expectDeadLetter("engine", Subjects.storedEvent(node), data, reason!, () =>
          js.publish(subject, data, { msgID: randomUUID() }),
        );
      }),
      RUNS,
    );
  });

  it("fl.hb.<node>: the heartbeat detector dead-letters every invalid, misaddressed or stale heartbeat (sent by the node's own user)", async () => {
    const senders = new Map<string, NatsConnection>();
    for (const node of NODES) senders.set(node, await lab.connectAs(agentUser(node)));
    const input = nodeArb.chain((node) =>
      fc.tuple(
        fc.constant(node),
        payloads(
          [heartbeatTemplate(node)],
          [
            fc.constant(json({ ...(heartbeatTemplate(node) as object), node: otherNode(node) })),
            fc
              .record({ incarnation: fc.constantFrom(0, 1), seq: fc.constantFrom(0, 0, 7, 1_000_000) })
              .map((f) => json({ ...(heartbeatTemplate(node) as object), ...f })),
          ],
        ),
      ),
    );
    await fc.assert(
      fc.asyncProperty(input, async ([node, data]) => {
        const subject = Subjects.heartbeat(node);
        const reason = heartbeatReason(node, data);
        fc.pre(reason !== null);
        const acks = agents.find((a) => a.node === node)!.acks;
        await expectDeadLetter("heartbeat-detector", subject, data, reason!, () =>
          senders.get(node)!.publish(subject, data, { reply: Subjects.heartbeatAck(node) }),
        );
        // Not acked: only the real agent's heartbeats are (at most the ones sent meanwhile).
        expect(agents.find((a) => a.node === node)!.acks - acks).toBeLessThanOrEqual(2);
      }),
      RUNS,
    );
  });

  it("fl.cmd.<actuator>.<node>: the actuators dead-letter every invalid or misaddressed command", async () => {
    const js = jetstream(admin);
    // The fence actuator does not run here (no fence agent): its commands would just wait.
    const actuators: Actuator[] = ["cluster", "agent", "provisioner", "guard"];
    const input = fc.tuple(nodeArb, fc.constantFrom(...actuators)).chain(([node, actuator]) =>
      fc.tuple(
        fc.constant(node),
        fc.constant(actuator),
        payloads(commandTemplates(node), [
          // Valid commands on the wrong actuator's subject, or about another node.
          fc.constantFrom(...commandTemplates(node)).map(json),
          fc.constantFrom(...commandTemplates(otherNode(node))).map(json),
        ]),
      ),
    );
    const provisioned = control.provisioned.length;
    await fc.assert(
      fc.asyncProperty(input, async ([node, actuator, data]) => {
        const subject = Subjects.command(actuator, node);
        const reason = commandReason(subject, data);
        fc.pre(reason !== null);
        await expectDeadLetter(`actuator-${actuator}`, subject, data, reason!, () => js.publish(subject, data, { msgID: randomUUID() }));
      }),
      RUNS,
    );
    expect(control.provisioned.length).toBe(provisioned);
    expect(agents.every((a) => a.commands.length === 0)).toBe(true);
  });

  it("fl.agent.<node>.cmd: the agent answers every invalid or misaddressed request with an error and dead-letters it", async () => {
    const relay = await lab.connectAs("actuator");
    const input = nodeArb.chain((node) =>
      fc.tuple(
        fc.constant(node),
        payloads(commandTemplates(node), [
          fc
            .constantFrom(...commandTemplates(otherNode(node)))
            .map((c) => json({ ...(c as object), kind: "watchdog.stop", params: { reason: "x" } })),
        ]),
      ),
    );
    await fc.assert(
      fc.asyncProperty(input, async ([node, data]) => {
        const subject = Subjects.agentCommand(node);
        const reason = agentCommandReason(node, data);
        fc.pre(reason !== null);
        let reply: { ok: boolean; reason?: string } | undefined;
        await expectDeadLetter("agent", subject, data, reason!, async () => {
          reply = (await relay.request(subject, data, { timeout: 2_000 })).json();
        });
        expect(reply).toMatchObject({ ok: false });
        expect(reply!.reason!.length).toBeGreaterThan(0);
      }),
      { ...RUNS, numRuns: 80 },
    );
    expect(agents.every((a) => a.commands.length === 0)).toBe(true);
  });

  it("fl.hback.<node>: the agent dead-letters every invalid ack", async () => {
    const input = nodeArb.chain((node) => fc.tuple(fc.constant(node), payloads([{ v: 1, node, at: now, state: "healthy" }])));
    await fc.assert(
      fc.asyncProperty(input, async ([node, data]) => {
        const parsed = parseMessage(HeartbeatAck, data, { maxBytes: MAX_ACK_BYTES });
        fc.pre(!parsed.ok);
        const subject = Subjects.heartbeatAck(node);
        await expectDeadLetter("agent", subject, data, parsed.ok ? "schema" : parsed.reason, () => admin.publish(subject, data));
      }),
      { ...RUNS, numRuns: 40 },
    );
  });

  it("fl.state.<token>: the node state service refuses what is not a node name (error reply + dead letter) and ignores payloads", async () => {
    const asker = agents[0]!.nc;
    const badToken = fc.oneof(
      fc.stringMatching(/^[A-Z][A-Za-z0-9_-]{0,20}$/),
      fc.stringMatching(/^-[a-z0-9]{0,10}$/),
      fc.stringMatching(/^[a-z0-9]{1,5}-$/),
      fc.stringMatching(/^[a-z0-9]{1,4}__[a-z0-9]{1,4}$/),
      fc.constant("x".repeat(254)),
    );
    await fc.assert(
      fc.asyncProperty(badToken, bytes, async (token, data) => {
        fc.pre(!NodeName.safeParse(nodeFromToken(token)).success);
        const subject = `fl.state.${token}`;
        let reply: { error?: string } | undefined;
        await expectDeadLetter("node-state", subject, data, "schema", async () => {
          reply = (await asker.request(subject, data, { timeout: 2_000 })).json();
        });
        expect(reply!.error).toMatch(/is not a node name/);
      }),
      { ...RUNS, numRuns: 40 },
    );
    // A valid node: whatever the payload, the same answer as for an empty request.
    const clean = (await asker.request(Subjects.nodeState("node-2"), "", { timeout: 2_000 })).json<Record<string, unknown>>();
    await fc.assert(
      fc.asyncProperty(fc.oneof(bytes, anyJson), async (data) => {
        const answer = (await asker.request(Subjects.nodeState("node-2"), data, { timeout: 2_000 })).json<Record<string, unknown>>();
        expect({ ...answer, at: 0 }).toEqual({ ...clean, at: 0 });
      }),
      { ...RUNS, numRuns: 30 },
    );
  });

  it("no state changed, every process still works, and a valid input is applied", async () => {
    // FL_NODES exactly as before the fuzzing: same values, same revisions.
    expect(await readNodes(admin)).toEqual(baseline);

    // The detector still acks heartbeats, the state service still answers.
    const acks = agents.map((a) => a.acks);
    await waitFor("new acks", () => agents.every((a, i) => a.acks > acks[i]!));
    expect(await agents[1]!.transport.lookupNodeState!("node-3", 2_000)).toBe("healthy");

    // Every actuator still carries out valid commands (here refused: their deadline passed).
    const js = jetstream(admin);
    const results: NodeEvent[] = [];
    const sub = admin.subscribe(Subjects.event("node-3"), {
      callback: (err, msg) => {
        const e = err ? null : NodeEvent.safeParse(msg.json());
        if (e?.success && e.data.type === "command.result") results.push(e.data);
      },
    });
    for (const template of commandTemplates("node-3")) {
      const command = { ...(template as object), id: `probe-${randomUUID()}`, deadline: 1 } as Command;
      await js.publish(Subjects.command(ACTUATOR_OF[command.kind], "node-3"), JSON.stringify(command), { msgID: command.id });
    }
    await waitFor("a result from every actuator", () => results.length === commandTemplates("node-3").length);
    for (const r of results) expect(r.data).toMatchObject({ ok: false, reason: expect.stringMatching(/^deadline passed/) });
    sub.unsubscribe();

    // The agent transport still answers commands.
    const relay = await lab.connectAs("actuator");
    const stop = { ...(commandTemplates("node-2")[2] as object), id: `probe-${randomUUID()}` };
    expect((await relay.request(Subjects.agentCommand("node-2"), JSON.stringify(stop), { timeout: 2_000 })).json()).toEqual({ ok: true });

    // The engine still applies valid events: a pause of node-3 lands in FL_NODES.
    const pause = createEvent("operator.pause", {
      id: `probe-${randomUUID()}`,
      node: "node-3",
      at: Date.now(),
      source: "operator:fuzz",
      data: { reason: "probe" },
    });
    await js.publish(Subjects.event("node-3"), JSON.stringify(pause), { msgID: pause.id });
    await waitFor(
      "the pause applied",
      async () => ((await readNodes(admin)).get("node-3")?.value as { path: string } | undefined)?.path === "paused",
    );

    // Every dead letter is a valid record, and the server refused nothing a role did.
    expect(letters.length).toBeGreaterThan(150);
    expect(lab.violations()).toEqual([]);
  });

  it("a malformed FL_NODES entry does not stop the processes that watch the bucket", async () => {
    // Only the engine may write FL_NODES; a broken entry (a bug, a manual `nats kv put`) must
    // not end the detector's or the fleet guard's watch.
    const kv = await new Kvm(admin).open(Buckets.nodes);
    await kv.put("zz-broken", "{not json");
    await kv.put("zz-wrong-shape", JSON.stringify({ node: 7, path: null }));
    const resume = createEvent("operator.resume", {
      id: `probe-${randomUUID()}`,
      node: "node-3",
      at: Date.now(),
      source: "operator:fuzz",
      data: {},
    });
    await jetstream(admin).publish(Subjects.event("node-3"), JSON.stringify(resume), { msgID: resume.id });
    // The detector's acks carry the state it watches: node-3 is healthy again.
    await waitFor(
      "node-3 healthy in FL_NODES",
      async () => ((await readNodes(admin)).get("node-3")?.value as { path: string } | undefined)?.path === "healthy",
    );
    await waitFor("node-3's agent told it is healthy (the detector's watch)", () => agents[2]!.lastAck?.state === "healthy");
    // The fleet guard counts node-3 healthy again (its watch).
    await waitFor(
      "the fleet guard's view",
      () => control.fleet.view().healthy === NODES.length && control.fleet.view().fleetSize === NODES.length,
    );
    await kv.delete("zz-broken");
    await kv.delete("zz-wrong-shape");
  });
});
