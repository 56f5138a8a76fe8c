import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "vitest";
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { createLogger, startNatsServer, publishEvent } from "@fenceline/bus";
import { provisionStreams } from "@fenceline/streams";
import { runEngine } from "@fenceline/engine";
import { runHeartbeatDetector } from "@fenceline/detectors";
import { createActuator, createAgentRelayHandlers, createClusterHandlers, createGuardHandlers, createKvBudgetStore, createProvisionerHandlers, runActuator, watchFleetView } from "@fenceline/actuators";
import { createNatsAgentTransport } from "@fenceline/agent";
import { DEMO_POLICY, createEvent, systemClock } from "@fenceline/contracts";
import { Buckets } from "@fenceline/streams";
import { InMemoryCluster } from "@fenceline/sim";
import { createDryRunProvisioner } from "../../packages/cli/src/dry-run.js";
import { readSnapshots } from "../../packages/cli/src/commands/nodes.js";
import { readAudit } from "../../packages/cli/src/commands/audit.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
it("explore", async () => {
  const dir = mkdtempSync(join(tmpdir(), "flx-"));
  const users = ["admin", "engine", "detector", "actuator", "cli", "agent-node-1", "agent-node-2", "agent-node-3"];
  const conf = `authorization { users = [ ${users.map((u) => `{ user: "${u}", password: "pw" }`).join(", ")} ] }\n`;
  writeFileSync(join(dir, "s.conf"), conf);
  const lines: string[] = [];
  const log = createLogger("x", { level: "silent" });
  const server = await startNatsServer({ configFile: join(dir, "s.conf"), extraArgs: ["-DV"], log: { debug: (_o: unknown, l: string) => lines.push(l) } as any });
  const port = server.port;
  const c = (user: string, extra: object = {}) => connect({ servers: `127.0.0.1:${port}`, user, pass: "pw", name: user, ...extra });
  const admin = await c("admin");
  await provisionStreams(admin, { log });
  const policy = DEMO_POLICY;
  const engine = await runEngine({ nc: await c("engine"), policy, log });
  const detector = await runHeartbeatDetector({ nc: await c("detector"), timeoutMs: policy.heartbeat.timeoutMs, log });
  const anc = await c("actuator");
  const actuators: any[] = [];
  const fleet = await watchFleetView(anc, { heartbeatTimeoutMs: policy.heartbeat.timeoutMs, onSnapshot: (n, e) => actuators.forEach((a) => a.observeEpoch(n, e)) });
  const budget = createKvBudgetStore(await new Kvm(anc).open(Buckets.fleet));
  const cluster = new InMemoryCluster({ clock: systemClock, nodes: ["node-1", "node-2", "node-3"] });
  actuators.push(
    createActuator({ name: "guard", clock: systemClock, handlers: createGuardHandlers({ store: budget, view: () => fleet.view(), policy, clock: systemClock }) }),
    createActuator({ name: "cluster", clock: systemClock, handlers: createClusterHandlers(cluster, systemClock) }),
    createActuator({ name: "agent", clock: systemClock, handlers: createAgentRelayHandlers(anc) }),
    createActuator({ name: "provisioner", clock: systemClock, handlers: createProvisionerHandlers(createDryRunProvisioner(log)) }),
  );
  const runners = actuators.map((a) => runActuator({ nc: anc, actuator: a, log }));
  const agents = await Promise.all([1, 2, 3].map(async (i) => {
    const node = `node-${i}`;
    const nc = await c(`agent-${node}`, { inboxPrefix: `_INBOX.agent.${node}` });
    const t = createNatsAgentTransport({ nc, node, log: log as any });
    const got: any[] = [];
    t.onCommand(async (cmd) => (got.push(cmd), { ok: true }));
    t.onAck(() => {});
    return { node, nc, t, got, seq: 0, on: true };
  }));
  const hb = setInterval(() => {
    for (const a of agents) if (a.on) a.t.sendHeartbeat({ v: 1, node: a.node, bootId: `boot-${a.node}`, incarnation: 1, seq: a.seq++, sentAt: Date.now() });
  }, 200);
  await sleep(1500);
  await agents[0]!.t.lookupNodeState!("node-2", 1000).catch((e) => console.log("lookup", e.message));
  agents[0]!.on = false;
  for (let i = 0; i < 60 && agents[0]!.got.length === 0; i++) await sleep(100);
  console.log("agent-1 got", agents[0]!.got.length);
  await sleep(500);
  // a dead letter from the agent
  await agents[1]!.nc.request("fl.agent.node-2.cmd", "garbage", { timeout: 1000 }).catch(() => {});
  const cli = await c("cli");
  await publishEvent(jetstream(cli), createEvent("operator.pause", { id: "op1", node: "node-3", at: Date.now(), source: "operator:x", data: { reason: "r" } }));
  await cli.close();
  console.log((await readSnapshots(`nats://cli:pw@127.0.0.1:${port}`)).length);
  let n = 0; for await (const _ of readAudit(`nats://cli:pw@127.0.0.1:${port}`, {})) n++;
  console.log("audit", n);
  clearInterval(hb);
  await Promise.all(runners.map((r) => r.stop()));
  await detector.stop(); await engine.stop(); await fleet.stop();
  await sleep(300);
  await server.stop();
  writeFileSync("/tmp/flx/trace.log", lines.join("\n"));
}, 60_000);
