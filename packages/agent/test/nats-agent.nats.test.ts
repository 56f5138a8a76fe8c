import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectNats, startNatsServer, type NatsServer } from "@fenceline/bus";
import { Heartbeat } from "@fenceline/contracts";
import { Subjects } from "@fenceline/streams";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAgentConfig } from "../src/config.js";
import { startAgent } from "../src/main.js";
import { silentLog } from "./helpers/silent-log.js";

let server: NatsServer;
let nc: NatsConnection;
let dir: string;

beforeAll(async () => {
  server = await startNatsServer({ jetstream: false });
  nc = await connectNats(server.url, { name: "agent-test-detector" });
  dir = await mkdtemp(join(tmpdir(), "fl-agent-nats-"));
});
afterAll(async () => {
  await nc?.close();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function configFor(node: string, watchdogIdentity?: string) {
  const nodeDir = join(dir, node);
  await mkdir(nodeDir, { recursive: true });
  await writeFile(join(nodeDir, "boot_id"), `boot-of-${node}\n`);
  await writeFile(join(nodeDir, "watchdog"), "");
  await writeFile(join(nodeDir, "app.conf"), "x=1");
  if (watchdogIdentity !== undefined) {
    await mkdir(join(nodeDir, "sysfs"), { recursive: true });
    await writeFile(join(nodeDir, "sysfs", "identity"), `${watchdogIdentity}\n`);
    await writeFile(join(nodeDir, "sysfs", "timeout"), "1\n");
  }
  return parseAgentConfig({
    node,
    nats: { url: server.url },
    peerListen: { host: "127.0.0.1", port: 0 },
    heartbeatInterval: "100ms",
    timing: { controlPlaneTimeoutMs: "1s", peerRoundMs: "500ms", watchdogTimeoutMs: "1500ms", marginMs: "1s" },
    watchdog: {
      path: join(nodeDir, "watchdog"),
      fallbackRebootCommand: null,
      ...(watchdogIdentity !== undefined ? { sysfsDir: join(nodeDir, "sysfs") } : {}),
    },
    services: { app: { files: [join(nodeDir, "app.conf")] } },
    stateDir: nodeDir,
    bootIdFile: join(nodeDir, "boot_id"),
  });
}

/** Acts as the heartbeat detector: validates each heartbeat and acks it. */
function ackHeartbeats(node: string, state = "healthy") {
  const seen: Heartbeat[] = [];
  const sub = nc.subscribe(Subjects.heartbeat(node), {
    callback: (_err, msg) => {
      const hb = Heartbeat.parse(msg.json());
      seen.push(hb);
      msg.respond(JSON.stringify({ v: 1, node: hb.node, at: Date.now(), state, ...(hb.stopping ? { withdrawn: true } : {}) }));
    },
  });
  return { seen, stop: () => sub.unsubscribe() };
}

const until = async (check: () => boolean, ms = 3_000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

describe("agent over a real nats-server", () => {
  it("heartbeats reach the detector and its acks reach the agent; a clean shutdown does a magic close", async () => {
    const config = await configFor("n1");
    const detector = ackHeartbeats("n1");
    const running = await startAgent(config, silentLog);
    try {
      expect(running.watchdogKind).toBe("device");
      await until(() => detector.seen.length >= 3 && running.agent.state().lastAckState === "healthy");
      const first = detector.seen[0]!;
      expect(first).toMatchObject({ node: "n1", bootId: "boot-of-n1", incarnation: 1 });
      // The agent starts (and heartbeats) before its NATS link is up: the very first may be lost.
      expect(first.seq).toBeLessThanOrEqual(1);
      expect(first.checksums?.app).toMatch(/^[0-9a-f]{64}$/);
      // A plain file resets nothing, and the contract says so.
      expect(first.contract).toMatchObject({
        watchdog: { kind: "none", timeoutMs: 1_500 },
        heartbeatIntervalMs: 100,
        membershipVersion: 0,
      });
      expect(first.peerUrl).toBe(`http://127.0.0.1:${running.peerAddress.port}`);
    } finally {
      await running.shutdown("test");
      detector.stop();
    }
    // The last heartbeat withdrew the contract; only then the magic close.
    expect(detector.seen.at(-1)).toMatchObject({ stopping: true, contract: { withdrawn: true } });
    expect(await readFile(join(dir, "n1", "watchdog"), "utf8")).toMatch(/^a+V$/);
  });

  it("reports the driver's kind from its sysfs identity: softdog, or hardware for any other driver", async () => {
    for (const [node, identity, kind] of [
      ["soft", "Software Watchdog", "softdog"],
      ["hard", "iTCO_wdt", "hardware"],
    ] as const) {
      const config = await configFor(node, identity);
      const detector = ackHeartbeats(node);
      const running = await startAgent(config, silentLog);
      try {
        await until(() => detector.seen.length >= 1);
        expect(detector.seen[0]!.contract?.watchdog).toEqual({ kind, timeoutMs: 1_500 });
      } finally {
        await running.shutdown("test");
        detector.stop();
      }
    }
  });

  it("a clean shutdown without the control plane's confirmation leaves the watchdog armed", async () => {
    const config = await configFor("n3");
    const running = await startAgent(config, silentLog);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await running.shutdown("test");
    expect(await readFile(join(dir, "n3", "watchdog"), "utf8")).toMatch(/^a+$/);
  });

  it("answers watchdog.stop requests: invalid and stale refused, current accepted", async () => {
    const config = await configFor("n2");
    const detector = ackHeartbeats("n2");
    const running = await startAgent(config, silentLog);
    const command = (epoch: number) => ({
      v: 1,
      id: `cmd-${epoch}`,
      node: "n2",
      epoch,
      kind: "watchdog.stop",
      issuedAt: Date.now(),
      deadline: Date.now() + 10_000,
      causedBy: 1,
      params: { reason: "test" },
    });
    const send = async (body: unknown) =>
      (await nc.request(Subjects.agentCommand("n2"), JSON.stringify(body), { timeout: 2_000 })).json<{ ok: boolean; reason?: string }>();
    // The agent connects in the background: wait until it answers at all.
    for (let until = Date.now() + 10_000; ; ) {
      try {
        await nc.request(Subjects.agentCommand("n2"), "{}", { timeout: 500 });
        break;
      } catch (err) {
        if (Date.now() > until) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    try {
      expect((await send({ kind: "watchdog.stop" })).reason).toMatch(/^invalid command/);
      expect(await send(command(4))).toEqual({ ok: true });
      expect(await send(command(3))).toEqual({ ok: false, reason: "stale epoch 3 < 4" });
      expect(running.agent.state().feeding).toBe(false);
      await until(() => detector.seen.some((hb) => hb.selfFenced?.bootId === "boot-of-n2"));
    } finally {
      detector.stop();
      await running.shutdown("test");
    }
    // fenced: no magic close, and the record waits for the next boot
    expect(await readFile(join(dir, "n2", "watchdog"), "utf8")).not.toContain("V");
    expect(JSON.parse(await readFile(join(dir, "n2", "self-fence.json"), "utf8"))).toMatchObject({ bootId: "boot-of-n2" });
  });
});
