import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { connectNats, createLogger, publishCommand, startNatsServer, type NatsServer } from "@fenceline/bus";
import { Command, CommandResult, systemClock } from "@fenceline/contracts";
import { Streams, Subjects, provisionStreams } from "@fenceline/streams";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createActuator } from "../src/actuator.js";
import { createAgentRelayHandlers } from "../src/nats/agent-relay.js";
import { runActuator } from "../src/nats/run-actuator.js";
import { command, progress } from "./helpers.js";
import { readStream } from "./nats-helpers.js";

const log = createLogger("agent-relay-test", { level: "silent" });

let server: NatsServer;
let nc: NatsConnection;
let agentNc: NatsConnection;
const subs: Subscription[] = [];

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connectNats(server.url, { name: "agent-relay-test" });
  agentNc = await connectNats(server.url, { name: "fake-agent" });
  await provisionStreams(nc);
});
afterEach(() => {
  for (const s of subs.splice(0)) s.unsubscribe();
});
afterAll(async () => {
  await agentNc?.close();
  await nc?.close();
  await server?.stop();
});

/** A fake node agent answering commands on its subject. */
async function fakeAgent(node: string, answer: (c: Command) => object | null) {
  const received: Command[] = [];
  subs.push(
    agentNc.subscribe(Subjects.agentCommand(node), {
      callback: (_err, msg) => {
        const c = Command.parse(msg.json());
        received.push(c);
        const reply = answer(c);
        if (reply) msg.respond(JSON.stringify(reply));
      },
    }),
  );
  await agentNc.flush();
  return received;
}

const stop = (node: string, fields: { deadline?: number; id?: string } = {}) =>
  command("watchdog.stop", { reason: "fencing", bootId: `boot-${node}` }, { node, now: Date.now(), ...fields });

describe("agent relay", () => {
  it("forwards watchdog.stop to the node's agent and reports its answer", async () => {
    const received = await fakeAgent("node-1.example", () => ({ ok: true }));
    const handlers = createAgentRelayHandlers(nc);
    const c = stop("node-1.example");
    expect(await handlers["watchdog.stop"]!(c, progress)).toEqual({ ok: true });
    expect(received).toEqual([c]);
  });

  it("reports an agent's refusal with its reason", async () => {
    await fakeAgent("node-2", () => ({ ok: false, reason: "boot id differs: already rebooted" }));
    const outcome = await createAgentRelayHandlers(nc)["watchdog.stop"]!(stop("node-2"), progress);
    expect(outcome).toEqual({ ok: false, reason: "boot id differs: already rebooted" });
  });

  it("asks for a retry when nobody listens for the node", async () => {
    const outcome = await createAgentRelayHandlers(nc)["watchdog.stop"]!(stop("node-nobody"), progress);
    expect(outcome.ok).toBe(false);
    expect(outcome.retry).toBe(true);
    expect(outcome.reason).toMatch(/^agent unreachable/);

    // Through the actuator core: a retry before the deadline.
    const actuator = createActuator({ name: "agent", handlers: createAgentRelayHandlers(nc), clock: systemClock });
    const disposition = await actuator.execute(stop("node-nobody"));
    expect(disposition.kind).toBe("retry");
    expect(disposition.kind === "retry" && disposition.reason).toMatch(/^agent unreachable/);
  });

  it("asks for a retry when the agent does not answer in time", async () => {
    await fakeAgent("node-silent", () => null);
    const started = Date.now();
    const outcome = await createAgentRelayHandlers(nc, { timeoutMs: 200 })["watchdog.stop"]!(stop("node-silent"), progress);
    expect(outcome).toMatchObject({ ok: false, retry: true });
    expect(outcome.reason).toMatch(/^agent unreachable/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it("runs on FL_COMMANDS: the result of an answered command lands on FL_EVENTS; an unreachable agent is retried until the deadline", async () => {
    await fakeAgent("node-3", () => ({ ok: true }));
    const actuator = createActuator({ name: "agent", handlers: createAgentRelayHandlers(nc, { timeoutMs: 200 }), clock: systemClock });
    const running = runActuator({ nc, actuator, log, retryDelayMs: 100 });
    try {
      const js = jetstream(nc);
      const answered = stop("node-3", { id: "stop-node-3" });
      const unreachable = stop("node-4", { id: "stop-node-4", deadline: Date.now() + 1_000 });
      await publishCommand(js, answered);
      await publishCommand(js, unreachable);
      const results = async () =>
        (await readStream(nc, Streams.events)).map((m) => m.data as { type: string }).filter((e) => e.type === "command.result").map((e) => CommandResult.parse(e));
      await expect.poll(async () => (await results()).map((r) => r.id).sort(), { timeout: 10_000 }).toEqual(["result:stop-node-3", "result:stop-node-4"]);
      const byId = Object.fromEntries((await results()).map((r) => [r.id, r.data]));
      expect(byId["result:stop-node-3"]).toMatchObject({ ok: true, kind: "watchdog.stop" });
      expect(byId["result:stop-node-4"]!.ok).toBe(false);
      expect(byId["result:stop-node-4"]!.reason).toMatch(/agent unreachable|deadline passed/);
    } finally {
      await running.stop();
    }
  });
});
