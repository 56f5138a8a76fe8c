import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, createLogger, startNatsServer, type NatsServer } from "@fenceline/bus";
import { startControlPlane, type ControlPlane } from "@fenceline/cli";
import { DEMO_POLICY, type ClusterApi, type Provisioner } from "@fenceline/contracts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, createLab, feedMonitor, netnsUnavailable, startAgentProcess, type AgentProcess, type Lab } from "./lab.js";

/**
 * Agents as separate OS processes, each in its own network namespace, against a real
 * nats-server and control plane on the host side; their watchdogs are plain files (every
 * keep-alive appends a byte). Timings are the demo's: heartbeat 200 ms, control-plane timeout
 * 1 s, peer round 500 ms, watchdog 1.5 s (fed every 500 ms).
 */

const NODES = 5;
const TIMING = DEMO_POLICY.agent;
const FEED_PERIOD_MS = Math.floor(TIMING.watchdogTimeoutMs / 3);
/** Scheduling, process and network slack on top of the rule's own bound. */
const SLACK_MS = 1_000;
/** A cut-off agent must have stopped feeding by then (counted from the cut). */
const BOUND_MS = TIMING.controlPlaneTimeoutMs + TIMING.peerRoundMs + SLACK_MS;
/** A node still being fed was fed within this long (two feed periods). */
const FED_RECENTLY_MS = 2 * FEED_PERIOD_MS;

const log = createLogger("netns-test", { level: process.env.FENCELINE_LOG_LEVEL ?? "silent" });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

const noCluster: ClusterApi = {
  async addTaint() {},
  async removeTaint() {},
  async deletePods() {
    return 0;
  },
  async deleteEvictedPods() {
    return 0;
  },
  async countWorkloads() {
    return { pods: 0, volumeAttachments: 0 };
  },
  async serverVersion() {
    return "1.30";
  },
};
const noProvisioner: Provisioner = { run: async (step) => ({ ok: true, output: `${step}: nothing to do` }) };

const unavailable = netnsUnavailable();

describe.skipIf(unavailable !== null)(`agents in network namespaces${unavailable ? ` — SKIPPED: ${unavailable}` : ""}`, () => {
  let lab: Lab | undefined;
  let dir = "";
  let storeDir = "";
  let server: NatsServer | undefined;
  let natsPort = 0;
  let nc: NatsConnection | undefined;
  let control: ControlPlane | undefined;
  const agents: AgentProcess[] = [];
  /** When the control plane last acked each node's heartbeat (seen on fl.hback.*). */
  const acks = new Map<string, number>();

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (pnpm exec turbo run build)`);
    dir = await mkdtemp(join(tmpdir(), "fl-netns-"));
    storeDir = await mkdtemp(join(tmpdir(), "fl-netns-js-"));
    lab = createLab(NODES);
    server = await startNatsServer({ host: lab.hostIp, storeDir, log });
    natsPort = server.port;
    nc = await connectNats(server.url, { name: "netns-test" });
    control = await startControlPlane({ nc, policy: DEMO_POLICY, log, cluster: noCluster, provisioner: noProvisioner });
    nc.subscribe("fl.hback.*", {
      callback: (err, msg) => {
        if (!err) acks.set(msg.subject.split(".")[2]!.replaceAll("_", "."), Date.now());
      },
    });
  }, 30_000);

  afterAll(async () => {
    for (const a of agents) a.child.kill("SIGKILL");
    await Promise.race([Promise.allSettled(agents.map((a) => a.exited)), sleep(3_000)]);
    await Promise.race([control?.stop(), sleep(5_000)]).catch(() => {});
    await nc?.close().catch(() => {});
    await server?.stop().catch(() => {});
    lab?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (storeDir) await rm(storeDir, { recursive: true, force: true });
  }, 30_000);

  /** Starts one agent per namespace (names `<prefix>-1..5`) and waits until all are fed and acked. */
  async function startFleet(prefix: string) {
    const names = Array.from({ length: NODES }, (_, i) => `${prefix}-${i + 1}`);
    const started = Date.now();
    const procs = await Promise.all(
      names.map((node, i) =>
        startAgentProcess({
          dir,
          ns: lab!.namespaces[i]!,
          node,
          ip: lab!.ipOf(i),
          natsUrl: server!.url,
          peers: names.flatMap((peer, j) => (j === i ? [] : [{ node: peer, ip: lab!.ipOf(j) }])),
          heartbeatInterval: "200ms",
          timing: TIMING,
        }),
      ),
    );
    agents.push(...procs);
    const monitor = feedMonitor(Object.fromEntries(procs.map((p) => [p.node, p.watchdog])));
    const fedRecently = (node: string) => Date.now() - (monitor.lastFed(node) ?? 0) < FED_RECENTLY_MS;
    try {
      await waitFor(
        `${names.join(", ")} fed and acked`,
        () => names.every((n) => (acks.get(n) ?? 0) > started && Date.now() - acks.get(n)! < 500 && fedRecently(n)),
        15_000,
      );
    } catch (err) {
      const logs = await Promise.all(procs.map(async (p) => `--- ${p.node}\n${(await readFile(p.logFile, "utf8").catch(() => "")).slice(-1500)}`));
      throw new Error(`${(err as Error).message}\n${logs.join("\n")}`);
    }
    const logOf = (i: number) => readFile(procs[i]!.logFile, "utf8");
    return {
      names,
      monitor,
      fedRecently,
      logOf,
      async stop() {
        await monitor.stop();
        for (const p of procs) p.child.kill("SIGKILL");
        await Promise.all(procs.map((p) => p.exited));
        lab!.heal();
      },
    };
  }

  it("one node's link cut: its agent stops feeding within controlPlaneTimeout + peerRound + slack; the others keep feeding", async () => {
    const fleet = await startFleet("cut");
    try {
      const cutAt = Date.now();
      lab!.cut(0);
      await sleep(BOUND_MS + 3 * FEED_PERIOD_MS);
      const victim = fleet.names[0]!;
      const lastFed = fleet.monitor.lastFed(victim)!;
      expect(lastFed - cutAt, `${victim} was last fed ${lastFed - cutAt} ms after the cut`).toBeLessThanOrEqual(BOUND_MS);
      expect(fleet.fedRecently(victim)).toBe(false);
      for (const other of fleet.names.slice(1)) expect(fleet.fedRecently(other), `${other} still fed`).toBe(true);
      expect(await fleet.logOf(0)).toMatch(/self-fence decision: stop-feeding \(isolated\)/);
    } finally {
      await fleet.stop();
    }
  }, 30_000);

  it("a 2-node group cut off from the other 3 and from NATS (the two still reach each other): both fence themselves, the 3 keep feeding", async () => {
    const fleet = await startFleet("part");
    try {
      const cutAt = Date.now();
      lab!.partition([3, 4]);
      await sleep(BOUND_MS + 3 * FEED_PERIOD_MS);
      for (const i of [3, 4]) {
        const node = fleet.names[i]!;
        const lastFed = fleet.monitor.lastFed(node)!;
        expect(lastFed - cutAt, `${node} was last fed ${lastFed - cutAt} ms after the cut`).toBeLessThanOrEqual(BOUND_MS);
        expect(fleet.fedRecently(node), `${node} stopped feeding`).toBe(false);
        // Not "isolated": its partner answered, and 2 of 5 is a minority.
        expect(await fleet.logOf(i)).toMatch(/self-fence decision: stop-feeding \(partitioned-minority\)/);
      }
      for (const i of [0, 1, 2]) expect(fleet.fedRecently(fleet.names[i]!), `${fleet.names[i]} still fed`).toBe(true);
    } finally {
      await fleet.stop();
    }
  }, 30_000);

  it("the NATS server cut off from everyone: nobody stops feeding over twice the bound (a control-plane outage)", async () => {
    const fleet = await startFleet("outage");
    try {
      await server!.stop();
      const stoppedAt = Date.now();
      while (Date.now() - stoppedAt < 2 * BOUND_MS) {
        await sleep(250);
        for (const node of fleet.names) expect(fleet.fedRecently(node), `${node} fed ${Date.now() - (fleet.monitor.lastFed(node) ?? 0)} ms ago`).toBe(true);
      }
      // They did notice: each asked its peers and found a majority without the control plane.
      for (let i = 0; i < NODES; i++) expect(await fleet.logOf(i)).toMatch(/self-fence decision: keep-feeding \(control-plane-outage\)/);

      // NATS back on the same port: every agent is heard again, still fed.
      server = await startNatsServer({ host: lab!.hostIp, port: natsPort, storeDir, log });
      const backAt = Date.now();
      await waitFor("acks after NATS came back", () => fleet.names.every((n) => (acks.get(n) ?? 0) > backAt), 15_000);
      for (const node of fleet.names) expect(fleet.fedRecently(node)).toBe(true);
    } finally {
      await fleet.stop();
    }
  }, 45_000);
});
