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
import { readStream } from "../../../test/support/read-stream.js";

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

  async function relayOnNats(options: { retryDelayMs: number }) {
    const attempts: Record<string, number> = {};
    const handlers = createAgentRelayHandlers(nc, { timeoutMs: 200 });
    const relay = handlers["watchdog.stop"]!;
    handlers["watchdog.stop"] = (c, ctx) => {
      attempts[c.node] = (attempts[c.node] ?? 0) + 1;
      return relay(c, ctx);
    };
    const actuator = createActuator({ name: "agent", handlers, clock: systemClock });
    const running = runActuator({ nc, actuator, log, retryDelayMs: options.retryDelayMs });
    return { attempts, running };
  }
  const results = async () =>
    (await readStream(nc, Streams.events))
      .map((m) => m.data as { type: string })
      .filter((e) => e.type === "command.result")
      .map((e) => CommandResult.parse(e));

  it("runs on FL_COMMANDS: an answered command's result lands on FL_EVENTS; an unreachable agent is retried, with no result before the deadline", async () => {
    await fakeAgent("node-3", () => ({ ok: true }));
    const { attempts, running } = await relayOnNats({ retryDelayMs: 50 });
    try {
      const js = jetstream(nc);
      await publishCommand(js, stop("node-3", { id: "stop-node-3" }));
      await publishCommand(js, stop("node-4", { id: "stop-node-4", deadline: Date.now() + 20_000 }));
      await expect.poll(async () => (await results()).map((r) => r.id), { timeout: 10_000 }).toContain("result:stop-node-3");
      expect((await results()).find((r) => r.id === "result:stop-node-3")!.data).toMatchObject({
        ok: true,
        kind: "watchdog.stop",
        epoch: 1,
      });
      await expect.poll(() => attempts["node-4"] ?? 0, { timeout: 5_000 }).toBeGreaterThanOrEqual(2);
      expect((await results()).map((r) => r.id)).not.toContain("result:stop-node-4");
    } finally {
      await running.stop();
    }
  });

  // Known issue (reported): the actuator consumers have a backoff list (30s, 30s, 1m, ...) and the
  // server computes a nak's redelivery as delay + backoff[n-1] - ack_wait, so from the third
  // delivery on an unreachable agent is retried after 30 s or more instead of every retryDelayMs,
  // usually past the command's deadline. Remove `.fails` once streams/definitions.ts is fixed.
  it("retries an unreachable agent every retryDelayMs until the deadline", async () => {
    const { attempts, running } = await relayOnNats({ retryDelayMs: 50 });
    try {
      await publishCommand(jetstream(nc), stop("node-5", { id: "stop-node-5", deadline: Date.now() + 20_000 }));
      await expect.poll(() => attempts["node-5"] ?? 0, { timeout: 1_500 }).toBeGreaterThanOrEqual(5);
    } finally {
      await running.stop();
    }
  });
});
