import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, createLogger, startNatsServer, type NatsServer } from "@fenceline/bus";
import { runNodeStateService, type NodeStateService } from "@fenceline/detectors";
import { Buckets, provisionStreams } from "@fenceline/streams";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./cli.js";

/** `fenceline agent --gate` (the kubelet's ExecStartPre) against a real nats-server and node state service. */
describe("fenceline agent --gate", () => {
  const log = createLogger("gate-test", { level: "silent" });
  let server: NatsServer;
  let nc: NatsConnection;
  let service: NodeStateService;
  let dir: string;
  const snapshot = (node: string, path: string) => JSON.stringify({ v: 1, node, path, context: { epoch: 2, since: 1 } });
  const configFor = async (node: string, url: string) => {
    const file = join(dir, `${node}.json`);
    await writeFile(file, JSON.stringify({ node, nats: { url }, stateDir: dir, logLevel: "silent" }));
    return file;
  };
  const gate = async (node: string, ...extra: string[]) =>
    runCli(["agent", "--config", await configFor(node, server.url), "--gate", ...extra], { timeoutMs: 30_000 });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "fenceline-gate-"));
    server = await startNatsServer();
    nc = await connectNats(server.url, { name: "gate-test" });
    await provisionStreams(nc);
    const kv = await new Kvm(nc).open(Buckets.nodes);
    await kv.put("node-1", snapshot("node-1", "fencing"));
    await kv.put("node-2", snapshot("node-2", "rejoining.provisioning"));
    service = await runNodeStateService({ nc, log });
  });
  afterAll(async () => {
    await service?.stop();
    await nc?.close();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("opens for a node the engine has remediated, and for a node it does not know", async () => {
    const remediated = await gate("node-2");
    expect(remediated.code).toBe(0);
    expect(remediated.stdout).toMatch(/node-2 may start its workloads: the engine says rejoining\.provisioning/);
    expect((await gate("node-9")).code).toBe(0);
  });

  it("holds a node the engine is fencing, saying why, until the engine has remediated it", async () => {
    const held = await gate("node-1", "--gate-timeout", "3s");
    expect(held.code).toBe(1);
    expect(held.stderr).toMatch(/node-1 waits: the engine says fencing/);
    const waiting = gate("node-1");
    await new Promise((r) => setTimeout(r, 2_500));
    const kv = await new Kvm(nc).open(Buckets.nodes);
    await kv.put("node-1", snapshot("node-1", "rejoining.provisioning"));
    const opened = await waiting;
    expect(opened.code).toBe(0);
    expect(opened.stderr).toMatch(/waits: the engine says fencing/);
  });

  it("stays closed while NATS cannot be reached", async () => {
    const result = await runCli(["agent", "--config", await configFor("node-2", "nats://127.0.0.1:1"), "--gate", "--gate-timeout", "3s"], {
      timeoutMs: 30_000,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/waits: the control plane cannot be asked/);
  });

  it("refuses --gate-timeout without --gate, and a bad duration", async () => {
    expect((await runCli(["agent", "--config", "x.json", "--gate-timeout", "3s"])).stderr).toMatch(/--gate-timeout goes with --gate/);
    expect((await runCli(["agent", "--config", "x.json", "--gate", "--gate-timeout", "soon"])).stderr).toMatch(/not a duration/);
  });
});
