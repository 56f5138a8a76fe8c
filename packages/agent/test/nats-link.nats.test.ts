import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectNats, startNatsServer, type NatsServer } from "@fenceline/bus";
import { createMembershipView, Heartbeat } from "@fenceline/contracts";
import { Subjects } from "@fenceline/streams";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAgentConfig } from "../src/config.js";
import { startAgent, type RunningAgent } from "../src/main.js";
import { createNatsAgentTransport } from "../src/nats-transport.js";
import { PEER_CHECK_PATH } from "../src/http-peers.js";
import { silentLog } from "./helpers/silent-log.js";
import { freePort } from "../../../test/support/free-port.js";
import { startOldNatsServer } from "../../../test/support/old-nats-server.js";

let dir: string;
const running: RunningAgent[] = [];
const servers: NatsServer[] = [];
const connections: NatsConnection[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "fl-agent-link-"));
});
afterAll(async () => {
  await Promise.allSettled(running.map((r) => r.shutdown("test end")));
  await Promise.allSettled(connections.map((c) => c.close()));
  await Promise.allSettled(servers.map((s) => s.stop()));
  await rm(dir, { recursive: true, force: true });
});

async function configFor(node: string, natsUrl: string, peers: Array<{ node: string; url: string }> = []) {
  const nodeDir = join(dir, node);
  await mkdir(nodeDir, { recursive: true });
  await writeFile(join(nodeDir, "boot_id"), `boot-of-${node}\n`);
  await writeFile(join(nodeDir, "watchdog"), "");
  return parseAgentConfig({
    node,
    nats: { url: natsUrl },
    peerListen: { host: "127.0.0.1", port: 0 },
    peers,
    heartbeatInterval: "100ms",
    timing: { controlPlaneTimeoutMs: "1s", peerRoundMs: "500ms", watchdogTimeoutMs: "1500ms", marginMs: "1s" },
    watchdog: { path: join(nodeDir, "watchdog"), fallbackRebootCommand: null },
    stateDir: nodeDir,
    bootIdFile: join(nodeDir, "boot_id"),
  });
}

const watchdogSize = async (node: string) => (await stat(join(dir, node, "watchdog"))).size;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const until = async (check: () => boolean | Promise<boolean>, ms = 5_000) => {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await sleep(20);
  }
};

describe("the agent's NATS link", () => {
  it("does not start against a nats-server older than Fenceline supports, and says why", async () => {
    const old = await startOldNatsServer("2.9.10");
    try {
      const config = await configFor("old-server", old.url);
      await expect(startAgent(config, silentLog, { connectRetryMs: 200, connectTimeoutMs: 1_000 })).rejects.toThrow(
        /^nats-server 2\.9\.10 at nats:\/\/127\.0\.0\.1:\d+ is too old: Fenceline needs nats-server \d+\.\d+\.\d+ or newer/,
      );
    } finally {
      await old.stop();
    }
  });

  it("starts without NATS, with the view it stored before: feeds its watchdog, then fences itself when no peer answers", async () => {
    const deadPort = await freePort();
    const config = await configFor("nonats", `nats://127.0.0.1:${deadPort}`);
    const view = createMembershipView(4, true, [{ node: "gone", peerUrl: `http://127.0.0.1:${await freePort()}` }, { node: "nonats" }]);
    await writeFile(config.membershipFile, JSON.stringify(view));
    const started = Date.now();
    const agent = await startAgent(config, silentLog, { connectRetryMs: 200, connectTimeoutMs: 300 });
    running.push(agent);
    expect(agent.natsConnected()).toBe(false);
    expect(agent.agent.state().feeding).toBe(true);
    const fedAtStart = await watchdogSize("nonats");
    expect(fedAtStart).toBeGreaterThan(0);
    // lost since start: after the 1s control-plane timeout it asks its one peer, nobody answers
    await until(() => agent.agent.state().selfFenced !== undefined, 4_000);
    const fencedAfter = Date.now() - started;
    expect(agent.agent.state().lastDecision?.reason).toBe("isolated");
    expect(fencedAfter).toBeGreaterThanOrEqual(1_000);
    expect(fencedAfter).toBeLessThan(1_000 + 500 + 1_000);
    const size = await watchdogSize("nonats");
    await sleep(700);
    expect(await watchdogSize("nonats")).toBe(size);
  });

  it("a node that never reached the control plane (no view) starts without NATS and keeps feeding", async () => {
    const config = await configFor("fresh", `nats://127.0.0.1:${await freePort()}`);
    const agent = await startAgent(config, silentLog, { connectRetryMs: 200, connectTimeoutMs: 300 });
    running.push(agent);
    await sleep(2_500);
    expect(agent.agent.state()).toMatchObject({ feeding: true, membership: null, lastDecision: { reason: "no-membership" } });
    const size = await watchdogSize("fresh");
    await sleep(700);
    expect(await watchdogSize("fresh")).toBeGreaterThan(size);
  });

  it("refuses to start on a membership file it cannot read", async () => {
    const config = await configFor("corrupt", `nats://127.0.0.1:${await freePort()}`);
    await writeFile(config.membershipFile, "{ not json");
    await expect(startAgent(config, silentLog, { connectRetryMs: 200, connectTimeoutMs: 300 })).rejects.toThrow(
      /membership\.json is not JSON/,
    );
  });

  it("keeps retrying the first connection and heartbeats once nats-server is up", async () => {
    const port = await freePort();
    // No view yet: it never fences itself for want of a majority, so it still runs when NATS appears.
    const config = await configFor("late", `nats://127.0.0.1:${port}`);
    const agent = await startAgent(config, silentLog, { connectRetryMs: 200, connectTimeoutMs: 300 });
    running.push(agent);
    expect(agent.natsConnected()).toBe(false);
    await sleep(500);
    const server = await startNatsServer({ port, jetstream: false });
    servers.push(server);
    const nc = await connectNats(server.url, { name: "late-detector" });
    connections.push(nc);
    const seen: Heartbeat[] = [];
    nc.subscribe(Subjects.heartbeat("late"), {
      callback: (_err, msg) => {
        seen.push(Heartbeat.parse(msg.json()));
        msg.respond(JSON.stringify({ v: 1, node: "late", at: Date.now(), state: "healthy" }));
      },
    });
    await until(() => agent.natsConnected() && seen.length >= 2 && agent.agent.state().lastAckState === "healthy", 5_000);
    expect(agent.agent.state().feeding).toBe(true);
    expect(agent.agent.state().selfFenced).toBeUndefined();
  });

  it("looks node states up through the node state service and answers peers with a verdict", async () => {
    const server = await startNatsServer({ jetstream: false });
    servers.push(server);
    const nc = await connectNats(server.url, { name: "fake-state-service" });
    connections.push(nc);
    // A stand-in for the control plane: heartbeat acks, and fl.state.* answers as the real service does.
    const states: Record<string, string> = { "node-a": "fencing", "node-b": "healthy" };
    nc.subscribe(Subjects.heartbeatAll, {
      callback: (_err, msg) => {
        const hb = Heartbeat.parse(msg.json());
        msg.respond(JSON.stringify({ v: 1, node: hb.node, at: Date.now(), state: states[hb.node] }));
      },
    });
    nc.subscribe(Subjects.nodeStateAll, {
      callback: (_err, msg) => {
        const node = msg.subject.split(".")[2]!.replaceAll("_", ".");
        if (node === "broken") return void msg.respond(JSON.stringify({ v: 1, node, at: Date.now(), error: "cannot read FL_NODES" }));
        if (node === "garbage") return void msg.respond("{");
        const state = states[node];
        msg.respond(
          JSON.stringify(
            state ? { v: 1, node, at: Date.now(), known: true, state, epoch: 2, since: 1 } : { v: 1, node, at: Date.now(), known: false },
          ),
        );
      },
    });

    const transport = createNatsAgentTransport({ nc, node: "node-b", log: silentLog });
    expect(await transport.lookupNodeState!("node-a", 1_000)).toBe("fencing");
    expect(await transport.lookupNodeState!("node-z", 1_000)).toBeUndefined();
    await expect(transport.lookupNodeState!("broken", 1_000)).rejects.toThrow(/cannot read FL_NODES/);
    await expect(transport.lookupNodeState!("garbage", 1_000)).rejects.toThrow(/invalid node state reply/);
    await transport.close();

    // The real agent of node-b answers node-a's peer question with the engine's verdict.
    const agent = await startAgent(await configFor("node-b", server.url), silentLog);
    running.push(agent);
    await until(() => agent.agent.state().lastAckState === "healthy");
    const ask = async (about: string) => {
      const res = await fetch(`http://127.0.0.1:${agent.peerAddress.port}${PEER_CHECK_PATH}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ from: about, about }),
      });
      return res.json();
    };
    expect(await ask("node-a")).toEqual({ node: "node-b", controlPlane: "reachable", verdict: "unhealthy" });
    expect(await ask("node-z")).toEqual({ node: "node-b", controlPlane: "reachable", verdict: "unknown" });
  });
});
