import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { createEvent, DEMO_POLICY, NodeEvent, type AuditRecord } from "@fenceline/contracts";
import { runSerfHandler } from "@fenceline/detectors";
import { startControlPlane } from "@fenceline/cli";
import { Buckets, Consumers, createDefinitions, Streams, Subjects } from "@fenceline/streams";
import { readAudit, readNodeSnapshots } from "@fenceline/read-model";
import { createDryRunCluster, createDryRunProvisioner } from "@fenceline/control-plane";
import {
  messageCount,
  permissionError,
  readNodes,
  readStream,
  sleep,
  startRoleControlPlane,
  startSecureServer,
  startTestAgent,
  testLog,
  waitFor,
  type SecureServer,
  type TestAgent,
} from "./harness.js";

/**
 * The configuration `fenceline nats-config` generates, on a real nats-server: every role does
 * its job with its own user (the control plane split by role, agents one user per node), and
 * everything outside a role's job is refused by the server.
 */
const NODES = ["node-1", "node-2", "node-3"];
const POLICY = DEMO_POLICY;

let lab: SecureServer;
let control: Awaited<ReturnType<typeof startRoleControlPlane>> | undefined;
let agents: TestAgent[] = [];
let admin: NatsConnection;
/** Every message on a subject we forged (payload starts with "forged:"), as the admin sees it. */
const forgedSeen: string[] = [];

beforeAll(async () => {
  lab = await startSecureServer(NODES);
  admin = await lab.connectAs("admin");
  admin.subscribe(">", {
    callback: (err, msg) => {
      if (!err && new TextDecoder().decode(msg.data.subarray(0, 7)) === "forged:") forgedSeen.push(msg.subject);
    },
  });
  control = await startRoleControlPlane(lab, { policy: POLICY, nodes: NODES });
  agents = await Promise.all(NODES.map((node) => startTestAgent(lab, node, { intervalMs: POLICY.heartbeat.intervalMs })));
});

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await control?.stop();
  await lab?.stop();
});

const forged = () => `forged:${randomUUID()}`;

/** Publishes as `nc` and expects the server to refuse it (the client is told, nobody receives it). */
async function expectPublishDenied(nc: NatsConnection, subject: string, reply?: string) {
  const denied = permissionError(nc, subject);
  nc.publish(subject, forged(), reply ? { reply } : {});
  const err = await denied;
  expect(err, `publish to ${subject} must be refused`).not.toBeNull();
  expect(err!.operation).toBe("publish");
}

async function expectSubscribeDenied(nc: NatsConnection, subject: string) {
  const denied = permissionError(nc, subject);
  const sub = nc.subscribe(subject);
  const err = await denied;
  expect(err, `subscription to ${subject} must be refused`).not.toBeNull();
  expect(err!.operation).toBe("subscription");
  expect(sub.isClosed()).toBe(true);
}

describe("nats-config permissions on a real nats-server", () => {
  it("the control plane runs with one user per role: heartbeats acked, fencing command round trip to the agent", async () => {
    await waitFor("every node healthy in FL_NODES", async () => {
      const nodes = await readNodes(admin);
      return NODES.every((n) => (nodes.get(n)?.value as { path?: string } | undefined)?.path === "healthy");
    });
    expect(agents.every((a) => a.acks > 0)).toBe(true);

    // An agent asks the node state service about a peer (it answers that peer's questions).
    expect(await agents[1]!.transport.lookupNodeState!("node-1", 2_000)).toBe("healthy");

    // node-1 goes silent: detector → heartbeat.missed; engine → suspect → guard slot → fencing;
    // the agent actuator relays watchdog.stop to node-1's agent, which answers on its own user.
    agents[0]!.beating = false;
    await waitFor("watchdog.stop at node-1's agent", () => agents[0]!.commands.length > 0, 20_000);
    expect(agents[0]!.commands[0]).toMatchObject({ kind: "watchdog.stop", node: "node-1", epoch: 1 });
    await waitFor("the relayed result in FL_EVENTS", async () =>
      (await readStream(admin, Streams.events)).some((m) => {
        const e = NodeEvent.safeParse(m.json());
        return e.success && e.data.type === "command.result" && e.data.data.kind === "watchdog.stop" && e.data.data.ok;
      }),
    );
    // Only node-1's agent got a command.
    expect(agents[1]!.commands).toEqual([]);
    expect(agents[2]!.commands).toEqual([]);

    // Nothing any role did on its job was refused by the server.
    expect(lab.violations()).toEqual([]);
    agents[0]!.beating = true;
  });

  it("an agent publishes only its own node's heartbeats", async () => {
    const nc = agents[0]!.nc;
    // Its own heartbeat goes through (the detector acks it).
    const acks = agents[0]!.acks;
    agents[0]!.beat();
    await waitFor("an ack for node-1", () => agents[0]!.acks > acks);

    await expectPublishDenied(nc, Subjects.heartbeat("node-2"));
    await expectPublishDenied(nc, Subjects.event("node-1"));
    await expectPublishDenied(nc, Subjects.event("node-2"));
    await expectPublishDenied(nc, Subjects.command("agent", "node-1"));
    await expectPublishDenied(nc, Subjects.command("cluster", "node-2"));
    await expectPublishDenied(nc, Subjects.audit("node-1"));
    await expectPublishDenied(nc, Subjects.heartbeatAck("node-2"));
    await expectPublishDenied(nc, Subjects.agentCommand("node-2"));
    await expectPublishDenied(nc, `$KV.${Buckets.nodes}.node-1`);
    await expectPublishDenied(nc, "$JS.API.STREAM.MSG.GET.FL_COMMANDS");
    await expectPublishDenied(nc, "$JS.API.CONSUMER.CREATE.FL_COMMANDS.spy.fl.cmd.agent.node-2");
    await expectPublishDenied(nc, "$JS.API.STREAM.PURGE.FL_EVENTS");

    // Through JetStream the publish is refused too (the ack never comes).
    const event = createEvent("operator.reset", {
      id: `forged-${randomUUID()}`,
      node: "node-1",
      at: Date.now(),
      source: "operator:agent",
      data: { reason: "forged" },
    });
    await expect(jetstream(nc).publish(Subjects.event("node-1"), JSON.stringify(event))).rejects.toThrow(
      /Permissions Violation|permission/i,
    );
    expect((await readStream(admin, Streams.events)).some((m) => m.json<{ id?: string }>().id === event.id)).toBe(false);

    await sleep(200);
    expect(forgedSeen).toEqual([]);
  });

  it("an agent cannot read other nodes' commands, nor the control plane's inboxes", async () => {
    const nc = agents[0]!.nc;
    await expectSubscribeDenied(nc, Subjects.agentCommand("node-2"));
    await expectSubscribeDenied(nc, Subjects.commandAll);
    await expectSubscribeDenied(nc, Subjects.commandsFor("agent"));
    await expectSubscribeDenied(nc, Subjects.eventAll);
    await expectSubscribeDenied(nc, Subjects.heartbeatAll);
    await expectSubscribeDenied(nc, Subjects.heartbeatAck("node-2"));
    await expectSubscribeDenied(nc, "_INBOX.>");
    await expectSubscribeDenied(nc, "_INBOX.agent.node-2.>");
    await expectSubscribeDenied(nc, ">");

    // It does receive its own commands and answers them.
    const actuator = await lab.connectAs("actuator");
    const before = agents[0]!.commands.length;
    const command = { ...agents[0]!.commands[0]!, id: `cmd-${randomUUID()}`, deadline: Date.now() + 60_000 };
    const reply = await actuator.request(Subjects.agentCommand("node-1"), JSON.stringify(command), { timeout: 2_000 });
    expect(reply.json()).toEqual({ ok: true });
    expect(agents[0]!.commands.length).toBe(before + 1);
  });

  it("an agent cannot aim the detector's replies at other subjects", async () => {
    const nc = agents[0]!.nc;
    const commands = await messageCount(admin, Streams.commands);
    const before = lab.violations().length;
    // A heartbeat (its own, valid) whose reply subject is a command subject, another node's ack
    // subject's neighbour, or a control-plane inbox: the detector answers, the server refuses.
    const hb = (reply: string) =>
      nc.publish(
        Subjects.heartbeat("node-1"),
        JSON.stringify({
          v: 1,
          node: "node-1",
          bootId: agents[0]!.bootId,
          incarnation: agents[0]!.incarnation,
          seq: agents[0]!.seq++,
          sentAt: Date.now(),
        }),
        { reply },
      );
    hb(Subjects.command("agent", "node-2"));
    hb("_INBOX.engine-inbox.1");
    nc.publish(Subjects.nodeState("node-2"), "", { reply: Subjects.command("cluster", "node-2") });
    await waitFor("three refused replies", () => lab.violations().length >= before + 3);
    expect(lab.violations().slice(before)).toEqual(
      expect.arrayContaining([
        { user: "detector", operation: "Publish", subject: Subjects.command("agent", "node-2") },
        { user: "detector", operation: "Publish", subject: "_INBOX.engine-inbox.1" },
        { user: "detector", operation: "Publish", subject: Subjects.command("cluster", "node-2") },
      ]),
    );
    expect(await messageCount(admin, Streams.commands)).toBe(commands);
  });

  it("detectors publish events but never commands; actuators results but never commands; the engine never talks to agents", async () => {
    const detector = await lab.connectAs("detector");
    await expectPublishDenied(detector, Subjects.command("agent", "node-1"));
    await expectPublishDenied(detector, Subjects.command("guard", "node-2"));
    await expectPublishDenied(detector, Subjects.audit("node-1"));
    await expectPublishDenied(detector, `$KV.${Buckets.nodes}.node-1`);
    await expectPublishDenied(detector, "$JS.API.CONSUMER.MSG.NEXT.FL_COMMANDS.actuator-agent");
    await expectSubscribeDenied(detector, Subjects.commandAll);
    await expect(jetstream(detector).publish(Subjects.command("agent", "node-1"), forged())).rejects.toThrow(
      /Permissions Violation|permission/i,
    );

    const actuator = await lab.connectAs("actuator");
    await expectPublishDenied(actuator, Subjects.command("cluster", "node-1"));
    await expectPublishDenied(actuator, Subjects.audit("node-1"));
    await expectPublishDenied(actuator, `$KV.${Buckets.nodes}.node-1`);
    await expectPublishDenied(actuator, Subjects.heartbeatAck("node-1"));

    const engine = await lab.connectAs("engine");
    // What a rewind needs (a takeover, a failed batch): the consumer reset of its partitions.
    await expect((await jetstreamManager(engine)).consumers.reset(Streams.events, Consumers.enginePartition(0))).resolves.toMatchObject({
      name: Consumers.enginePartition(0),
    });
    await expectPublishDenied(engine, `$JS.API.CONSUMER.DELETE.${Streams.events}.${Consumers.enginePartition(0)}`);
    await expectPublishDenied(engine, Subjects.agentCommand("node-1"));
    await expectPublishDenied(engine, Subjects.heartbeatAck("node-1"));
    await expectSubscribeDenied(engine, Subjects.agentCommand("node-1"));
    await sleep(200);
    expect(forgedSeen).toEqual([]);
  });

  it("the CLI reads nodes and the audit, publishes operator events, and cannot take the engine's events or ack them", async () => {
    const cli = await lab.connectAs("cli");
    const snapshots = await readNodeSnapshots(cli);
    expect(snapshots.map((s) => s.node)).toEqual(NODES);
    const audit: AuditRecord[] = [];
    for await (const record of readAudit(cli, {})) audit.push(record);
    expect(audit.length).toBeGreaterThan(3);

    const event = createEvent("operator.pause", {
      id: `op-${randomUUID()}`,
      node: "node-3",
      at: Date.now(),
      source: "operator:test",
      data: { reason: "maintenance" },
    });
    const ack = await jetstream(cli).publish(Subjects.event("node-3"), JSON.stringify(event), { msgID: event.id });
    expect(ack.seq).toBeGreaterThan(0);
    await waitFor(
      "node-3 paused",
      async () => ((await readNodes(admin)).get("node-3")?.value as { path?: string } | undefined)?.path === "paused",
    );
    const resume = createEvent("operator.resume", {
      id: `op-${randomUUID()}`,
      node: "node-3",
      at: Date.now(),
      source: "operator:test",
      data: {},
    });
    await jetstream(cli).publish(Subjects.event("node-3"), JSON.stringify(resume), { msgID: resume.id });
    // The old per-partition subject: the engine (its own user) answers with the reason.
    await expect(jetstream(cli).publish(`fl.evt.0.node-3`, JSON.stringify(resume), { msgID: `${resume.id}-old` })).rejects.toThrow(
      /per-partition subject/,
    );

    const durables = createDefinitions()
      .consumers.filter((c) => c.stream === Streams.events)
      .map((c) => c.config.durable_name);
    for (const durable of durables) {
      await expectPublishDenied(cli, `$JS.API.CONSUMER.MSG.NEXT.${Streams.events}.${durable}`);
      await expectPublishDenied(cli, `$JS.API.CONSUMER.DELETE.${Streams.events}.${durable}`);
      await expectPublishDenied(cli, `$JS.API.CONSUMER.RESET.${Streams.events}.${durable}`);
    }
    await expectPublishDenied(cli, "$JS.API.CONSUMER.MSG.NEXT.FL_COMMANDS.actuator-agent");
    await expectPublishDenied(cli, "$JS.ACK.FL_COMMANDS.actuator-agent.1.1.1.1.1.0");
    await expectPublishDenied(cli, Subjects.command("agent", "node-1"));
    await expectPublishDenied(cli, `$KV.${Buckets.nodes}.node-1`);
    await expectPublishDenied(cli, "$JS.API.STREAM.DELETE.FL_EVENTS");
  });

  it("the serf handler (on the nodes) reports membership with its own user and inbox prefix", async () => {
    const previous = process.env.NATS_INBOX_PREFIX;
    process.env.NATS_INBOX_PREFIX = "_INBOX.serf";
    try {
      const outcome = await runSerfHandler({
        env: { SERF_EVENT: "member-join", SERF_SELF_NAME: "node-2" },
        stdin: "node-2\t10.0.0.2\t\t\n",
        server: lab.url("serf"),
        say: () => {},
      });
      expect(outcome.exitCode).toBe(0);
      expect(outcome.published).toMatchObject([{ node: "node-2", type: "signal.healthy" }]);
    } finally {
      if (previous === undefined) delete process.env.NATS_INBOX_PREFIX;
      else process.env.NATS_INBOX_PREFIX = previous;
    }
    const serf = await lab.connectAs("serf");
    await expectPublishDenied(serf, Subjects.command("agent", "node-1"));
    await expectSubscribeDenied(serf, "_INBOX.>");
  });

  it("`fenceline up`'s control-plane user runs the whole control plane on one connection", async () => {
    // Its own server: a fresh history, no events left unacknowledged by the split control plane.
    const lab2 = await startSecureServer(NODES);
    const log = testLog("up");
    const plane = await startControlPlane({
      nc: await lab2.connectAs("control-plane"),
      policy: POLICY,
      log,
      cluster: createDryRunCluster(log),
      provisioner: createDryRunProvisioner(log),
    });
    const agents2 = await Promise.all(NODES.map((node) => startTestAgent(lab2, node, { intervalMs: POLICY.heartbeat.intervalMs })));
    try {
      const admin2 = await lab2.connectAs("admin");
      const pathOf = async (node: string) => ((await readNodes(admin2)).get(node)?.value as { path?: string } | undefined)?.path;
      await waitFor("every node healthy", async () => (await Promise.all(NODES.map(pathOf))).every((p) => p === "healthy"));
      expect(agents2.every((a) => a.acks > 0)).toBe(true);
      const event = createEvent("operator.pause", {
        id: `op-${randomUUID()}`,
        node: "node-2",
        at: Date.now(),
        source: "operator:test",
        data: { reason: "check" },
      });
      await jetstream(await lab2.connectAs("cli")).publish(Subjects.event("node-2"), JSON.stringify(event), { msgID: event.id });
      await waitFor("the pause applied", async () => (await pathOf("node-2")) === "paused");
      expect(await agents2[0]!.transport.lookupNodeState!("node-2", 2_000)).toBe("paused");
      expect(lab2.violations()).toEqual([]);
    } finally {
      await Promise.all(agents2.map((a) => a.stop()));
      await plane.stop();
      await lab2.stop();
    }
  });
});
