import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, createLogger, openMembershipStore, startNatsServer, type NatsServer } from "@fenceline/bus";
import { startControlPlane, type ControlPlane } from "@fenceline/cli";
import { AuditRecord, DEMO_POLICY, systemClock, type Provisioner } from "@fenceline/contracts";
import { Subjects } from "@fenceline/streams";
import { InMemoryCluster } from "@fenceline/sim";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderAsDeployed } from "../support/deploy-agent.js";
import { CLI, createLab, feedMonitor, netnsUnavailable, startAgentProcess, TEST_OVERRIDES, type AgentProcess, type Lab } from "./lab.js";

/**
 * Agents as separate OS processes, each in its own network namespace, configured the way deploy/
 * configures them: deploy/agent.json rendered by the DaemonSet's own init container for each
 * node's name and address (no peers list, no fleet size: each agent learns the fleet and its
 * peers' addresses from the control plane), with only TEST_OVERRIDES changed. A real nats-server
 * and the whole control plane (engine, membership keeper, heartbeat detector, fleet guard,
 * actuators) run on the host side, acting on an in-memory Kubernetes cluster whose kubelets and
 * controllers run in real time. The watchdogs are plain files (every keep-alive appends a byte);
 * the harness plays the hardware: a node whose watchdog goes unfed for its timeout is reset (its
 * agent killed, its containers gone), and boots again when a test says so.
 *
 * Timings are the demo policy's: heartbeat 200 ms, control-plane timeout 1 s, peer round 500 ms,
 * watchdog 1.5 s (fed every 500 ms), margin 1 s: safe time 4 s.
 */

const NODES = 5;
const POLICY = DEMO_POLICY;
const TIMING = POLICY.agent;
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

const noProvisioner: Provisioner = { run: async (step) => ({ ok: true, output: `${step}: nothing to do` }) };

const unavailable = netnsUnavailable();

describe.skipIf(unavailable !== null)(
  `agents in network namespaces, configured as deploy/ renders them${unavailable ? ` — SKIPPED: ${unavailable}` : ""}`,
  () => {
    let lab: Lab | undefined;
    let dir = "";
    const stops: Array<() => Promise<void>> = [];

    beforeAll(() => {
      if (!existsSync(CLI)) throw new Error(`${CLI} is missing: build first (pnpm exec turbo run build)`);
      lab = createLab(NODES);
    });

    afterAll(async () => {
      for (const stop of stops.splice(0)) await stop().catch(() => {});
      lab?.destroy();
    }, 30_000);

    /**
     * One world per test (its own nats-server, control plane and cluster, node names `<prefix>-1..5`,
     * each agent in namespace i), started and warmed up: every node healthy, every agent holding
     * the whole fleet's view and heard with a contract the engine may count on (watchdog, by time),
     * the StatefulSet's replica running.
     */
    async function startWorld(prefix: string) {
      dir = await mkdtemp(join(tmpdir(), `fl-netns-${prefix}-`));
      const storeDir = join(dir, "jetstream");
      let server: NatsServer = await startNatsServer({ host: lab!.hostIp, storeDir, log });
      const natsPort = server.port;
      const nc: NatsConnection = await connectNats(server.url, { name: "netns-test" });
      const names = Array.from({ length: NODES }, (_, i) => `${prefix}-${i + 1}`);
      const cluster = new InMemoryCluster({ clock: systemClock, nodes: names });
      cluster.addStatefulSet("db", 1);
      const control: ControlPlane = await startControlPlane({ nc, policy: POLICY, log, cluster, provisioner: noProvisioner });
      const members = await openMembershipStore(nc);

      /** When the control plane last acked each node's heartbeat (seen on fl.hback.*). */
      const acks = new Map<string, number>();
      nc.subscribe("fl.hback.*", {
        callback: (err, msg) => {
          if (!err) acks.set(msg.subject.split(".")[2]!.replaceAll("_", "."), Date.now());
        },
      });

      const audit: AuditRecord[] = [];
      nc.subscribe(Subjects.auditAll, {
        callback: (err, msg) => {
          if (err) return;
          const parsed = AuditRecord.safeParse(msg.json());
          if (parsed.success) audit.push(parsed.data);
        },
      });
      const agents = new Map<string, AgentProcess>();
      const boots = new Map<string, number>(names.map((n) => [n, 1]));
      const start = async (i: number) => {
        const node = names[i]!;
        const agent = await startAgentProcess({
          dir,
          ns: lab!.namespaces[i]!,
          node,
          ip: lab!.ipOf(i),
          natsUrl: server.url,
          policy: POLICY,
          bootId: `${node}-boot-${boots.get(node)}`,
        });
        agents.set(node, agent);
        return agent;
      };
      await Promise.all(names.map((_, i) => start(i)));
      const monitor = feedMonitor(Object.fromEntries(names.map((n) => [n, join(dir, n, "watchdog")])));
      const fedRecently = (node: string) => Date.now() - (monitor.lastFed(node) ?? 0) < FED_RECENTLY_MS;

      // The hardware: a watchdog unfed for its timeout resets the machine (the agent dies with it).
      const resets: Array<{ node: string; at: number; lastFedAt: number }> = [];
      const down = new Set<string>();
      const powerCycles = new Map<string, Promise<void>>();
      /** When each machine last booted: its watchdog is armed once its agent fed it in this boot. */
      const bootedAt = new Map<string, number>();
      // And the truth every test checks: the StatefulSet's replica never runs on two nodes at once.
      const twice: string[] = [];
      let running = true;
      const hardware = (async () => {
        while (running) {
          const now = Date.now();
          for (const node of names) {
            const lastFedAt = monitor.lastFed(node);
            if (
              down.has(node) ||
              lastFedAt === undefined ||
              lastFedAt < (bootedAt.get(node) ?? 0) ||
              now - lastFedAt <= TIMING.watchdogTimeoutMs
            )
              continue;
            down.add(node);
            resets.push({ node, at: now, lastFedAt });
            const agent = agents.get(node);
            agent?.child.kill("SIGKILL");
            cluster.crash(node);
            // Its kernel goes too: every socket in the namespace (what the dead agent left unsent).
            const i = names.indexOf(node);
            powerCycles.set(
              node,
              (agent?.exited ?? Promise.resolve()).then(() => lab!.powerCycle(i)),
            );
          }
          cluster.step(now);
          for (const r of cluster.replicas())
            if (r.runningOn.length > 1) twice.push(`${new Date(now).toISOString()} ${r.replica} on ${r.runningOn.join(", ")}`);
          await sleep(25);
        }
      })();

      let stopped = false;
      const stop = async () => {
        if (stopped) return;
        stopped = true;
        running = false;
        await hardware;
        await monitor.stop();
        for (const a of agents.values()) a.child.kill("SIGKILL");
        await Promise.race([Promise.allSettled([...agents.values()].map((a) => a.exited)), sleep(3_000)]);
        await Promise.race([control.stop(), sleep(5_000)]).catch(() => {});
        await nc.close().catch(() => {});
        await server.stop().catch(() => {});
        lab!.heal();
        await rm(dir, { recursive: true, force: true });
      };
      stops.push(stop);

      const logs = async () =>
        (
          await Promise.all(
            names.map(async (n) => `--- ${n}\n${(await readFile(join(dir, n, "agent.log"), "utf8").catch(() => "")).slice(-1500)}`),
          )
        ).join("\n");
      const contextOf = (node: string) => control.engine.core.snapshot(node)?.context;
      const stateOf = (node: string) => control.engine.core.snapshot(node)?.path;
      try {
        await waitFor(
          `${names.join(", ")} healthy, fed, with the whole fleet's view and a contract the engine counts on`,
          async () => {
            const { view } = await members.read();
            if (view?.members.length !== NODES) return false;
            return (
              names.every(
                (n) =>
                  stateOf(n) === "healthy" &&
                  fedRecently(n) &&
                  contextOf(n)?.guarantee.timeBased === true &&
                  contextOf(n)?.contract?.membershipVersion === view.version,
              ) && cluster.replicas().every((r) => r.runningOn.length === 1)
            );
          },
          20_000,
        );
      } catch (err) {
        throw new Error(
          `${(err as Error).message}\n${names.map((n) => `${n}: ${stateOf(n)} ${JSON.stringify(contextOf(n)?.guarantee)}`).join("\n")}\n${await logs()}`,
        );
      }

      return {
        /** The audit trail of a node, one line per record. */
        trail: (node: string) =>
          audit.filter((r) => r.node === node).map((r) => `${r.event.id} ${r.from} → ${r.to}${r.reason ? `: ${r.reason}` : ""}`),
        stop,
        names,
        cluster,
        monitor,
        fedRecently,
        resets,
        twice,
        stateOf,
        contextOf,
        logs,
        logOf: (i: number) => readFile(join(dir, names[i]!, "agent.log"), "utf8"),
        configOf: async (i: number) => JSON.parse(await readFile(join(dir, names[i]!, "agent.json"), "utf8")) as Record<string, unknown>,
        acks,
        /** The machine boots again (a new boot id) and its agent starts. */
        async boot(i: number) {
          const node = names[i]!;
          await powerCycles.get(node);
          boots.set(node, boots.get(node)! + 1);
          bootedAt.set(node, Date.now());
          cluster.boot(node, `${node}-boot-${boots.get(node)}`);
          await start(i);
          down.delete(node);
        },
        async stopNats() {
          await server.stop();
        },
        async startNats() {
          server = await startNatsServer({ host: lab!.hostIp, port: natsPort, storeDir, log });
        },
      };
    }

    it("the agents run deploy/'s configuration: no peers, no fleet size, their own address advertised", async () => {
      const world = await startWorld("conf");
      try {
        for (let i = 0; i < NODES; i++) {
          const config = await world.configOf(i);
          expect(config).not.toHaveProperty("peers");
          expect(config).not.toHaveProperty("fleetSize");
          expect(config).toMatchObject({ node: world.names[i], peerAdvertiseUrl: `http://${lab!.ipOf(i)}:9797` });
          expect(world.contextOf(world.names[i]!)).toMatchObject({
            peerUrl: `http://${lab!.ipOf(i)}:9797`,
            guarantee: { guarantee: "watchdog", timeBased: true },
          });
          // Nothing but the test's overrides differs from what the DaemonSet renders.
          const rendered = JSON.parse(renderAsDeployed({ name: world.names[i]!, ip: lab!.ipOf(i) })) as Record<string, unknown>;
          const differs = [...new Set([...Object.keys(rendered), ...Object.keys(config)])]
            .filter((k) => JSON.stringify(rendered[k]) !== JSON.stringify(config[k]))
            .sort();
          expect(differs).toEqual(["bootIdFile", "heartbeatInterval", "nats", "stateDir", "timing", "watchdog"]);
        }
        expect(TEST_OVERRIDES.map((o) => o.split(":")[0]).join(", ")).toBe(
          "nats.url, heartbeatInterval, timing, watchdog.path, stateDir, bootIdFile",
        );
      } finally {
        await world.stop();
      }
    }, 60_000);

    it("one node cut off: it fences itself within controlPlaneTimeout + peerRound + slack, the engine moves its workload once; healed and rebooted, it rejoins", async () => {
      const world = await startWorld("cut");
      try {
        const victim = world.cluster.replicas()[0]!.runningOn[0]!;
        const i = world.names.indexOf(victim);
        const cutAt = Date.now();
        lab!.cut(i);
        world.cluster.setReachable(victim, false);

        // It stops feeding (isolated: no peer answers) and its watchdog resets it.
        await waitFor(
          `${victim} reset by its watchdog`,
          () => world.resets.some((r) => r.node === victim),
          BOUND_MS + TIMING.watchdogTimeoutMs + 2_000,
        );
        const reset = world.resets.find((r) => r.node === victim)!;
        expect(reset.lastFedAt - cutAt, `${victim} was last fed ${reset.lastFedAt - cutAt} ms after the cut`).toBeLessThanOrEqual(BOUND_MS);
        expect(await world.logOf(i)).toMatch(/self-fence decision: stop-feeding \(isolated\)/);

        // The engine assumes it fenced by the safe time (its contract allows it) and the replica moves, once.
        await waitFor(
          "the replica running on another node",
          () => world.cluster.replicas()[0]!.runningOn.some((n) => n !== victim),
          30_000,
        );
        expect(world.contextOf(victim)?.fence.confirmedBy?.by).toMatch(/^(safe-time|watchdog)$/);
        const starts = world.cluster.events().filter((e) => e.kind === "container.started" && e.at >= cutAt && e.what.includes("db-0"));
        expect(starts, starts.map((e) => e.what).join("\n")).toHaveLength(1);
        expect(world.twice).toEqual([]);
        for (const other of world.names.filter((n) => n !== victim)) expect(world.fedRecently(other), `${other} still fed`).toBe(true);
        expect(world.resets.map((r) => r.node)).toEqual([victim]);

        // Healed and booted again: it rejoins (a new boot id) and the replica stays where it moved.
        await waitFor(`${victim} down (remediated, still silent)`, () => world.stateOf(victim) === "down", 30_000);
        lab!.heal();
        world.cluster.setReachable(victim, true);
        await world.boot(i);
        await waitFor(`${victim} healthy again`, () => world.stateOf(victim) === "healthy", 30_000).catch(async (err: Error) => {
          throw new Error(
            `${err.message}: ${world.stateOf(victim)} ${world.contextOf(victim)?.operatorReason} boot ${world.contextOf(victim)?.bootId}\n${world.trail(victim).join("\n")}`,
          );
        });
        expect(world.cluster.replicas()[0]!.runningOn).toHaveLength(1);
        expect(world.cluster.replicas()[0]!.runningOn[0]).not.toBe(victim);
        expect(world.twice).toEqual([]);
        expect(world.resets.map((r) => r.node)).toEqual([victim]);
      } finally {
        await world.stop();
      }
    }, 120_000);

    it("a 2-node group cut off from the other 3 and from NATS (the two still reach each other): both fence themselves, the 3 keep running", async () => {
      const world = await startWorld("part");
      try {
        const cutAt = Date.now();
        lab!.partition([3, 4]);
        for (const i of [3, 4]) world.cluster.setReachable(world.names[i]!, false);
        await sleep(BOUND_MS + TIMING.watchdogTimeoutMs + 3 * FEED_PERIOD_MS);
        for (const i of [3, 4]) {
          const node = world.names[i]!;
          const reset = world.resets.find((r) => r.node === node);
          expect(reset, `${node} reset`).toBeDefined();
          expect(reset!.lastFedAt - cutAt, `${node} was last fed ${reset!.lastFedAt - cutAt} ms after the cut`).toBeLessThanOrEqual(
            BOUND_MS,
          );
          // Not "isolated": its partner answered, and 2 of 5 is a minority of the view learned.
          expect(await world.logOf(i)).toMatch(/self-fence decision: stop-feeding \(partitioned-minority\)/);
        }
        for (const i of [0, 1, 2]) expect(world.fedRecently(world.names[i]!), `${world.names[i]} still fed`).toBe(true);
        expect(world.resets.map((r) => r.node).sort()).toEqual([world.names[3], world.names[4]]);
        expect(world.twice).toEqual([]);
      } finally {
        await world.stop();
      }
    }, 90_000);

    it("the whole control plane cut off (the NATS server gone): nobody reboots over twice the bound; back, every agent is heard again", async () => {
      const world = await startWorld("outage");
      try {
        await world.stopNats();
        const stoppedAt = Date.now();
        while (Date.now() - stoppedAt < 2 * BOUND_MS + TIMING.watchdogTimeoutMs) {
          await sleep(250);
          for (const node of world.names)
            expect(world.fedRecently(node), `${node} fed ${Date.now() - (world.monitor.lastFed(node) ?? 0)} ms ago`).toBe(true);
        }
        expect(world.resets).toEqual([]);
        // They did notice: each asked its peers (addresses learned from the control plane) and found a majority of the view without it.
        for (let i = 0; i < NODES; i++) expect(await world.logOf(i)).toMatch(/self-fence decision: keep-feeding \(control-plane-outage\)/);

        // NATS back on the same port: every agent is heard again, still fed, nobody remediated.
        await world.startNats();
        const backAt = Date.now();
        await waitFor("acks after NATS came back", () => world.names.every((n) => (world.acks.get(n) ?? 0) > backAt), 15_000);
        for (const node of world.names) expect(world.fedRecently(node)).toBe(true);
        expect(world.resets).toEqual([]);
        expect(world.twice).toEqual([]);
      } finally {
        await world.stop();
      }
    }, 90_000);
  },
);
