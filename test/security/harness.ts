import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager, type StoredMsg } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection, PermissionViolationError, QueuedIterator, Status } from "@nats-io/transport-node";
import { runActuator } from "@fenceline/actuators";
import { createNatsAgentTransport, type AgentTransport } from "@fenceline/agent";
import { connectNats, startNatsServer, type Logger, type NatsServer } from "@fenceline/bus";
import { createActuators } from "@fenceline/control-plane";
import { systemClock, type Clock, type CommandOf, type Heartbeat, type HeartbeatAck, type Policy } from "@fenceline/contracts";
import { runHeartbeatDetector, runMembershipKeeper } from "@fenceline/detectors";
import { runEngine, type RunningEngine } from "@fenceline/engine";
import { InMemoryCluster } from "@fenceline/sim";
import {
  agentInboxPrefix,
  agentUser,
  Buckets,
  fencelineUsers,
  provisionStreams,
  renderNatsConfig,
  userUrl,
  type NatsUser,
} from "@fenceline/streams";
import { messageCount as messageCountOf, readStream as readStreamOf, testLog } from "../engine/nats-helpers.js";

export { sleep, testLog, waitFor } from "../engine/nats-helpers.js";

/** A permission violation the server logged: who tried what. */
type Violation = { user: string; operation: "Publish" | "Subscription"; subject: string };

export type SecureServer = {
  server: NatsServer;
  configFile: string;
  passwords: Record<string, string>;
  /** `nats://user:password@127.0.0.1:port`: the credentials travel in the URL, as a deployment gives them. */
  url(user: string): string;
  /** Connects as `user` (an agent with its own inbox prefix); closed by stop(). */
  connectAs(user: string): Promise<NatsConnection>;
  /** Permission violations in the server's log so far. */
  violations(): Violation[];
  stop(): Promise<void>;
};

/**
 * A private nats-server (loopback, free port, temporary store) running the configuration
 * `fenceline nats-config` generates for `nodes`, plus a test-only `admin` user that may do
 * anything (fault injection and inspection).
 */
export async function startSecureServer(nodes: string[]): Promise<SecureServer> {
  const dir = await mkdtemp(join(tmpdir(), "fl-security-"));
  const passwords: Record<string, string> = {};
  const auth = (user: string) => ({ password: (passwords[user] = randomBytes(12).toString("base64url")) });
  const admin: NatsUser = {
    user: "admin",
    role: "cli",
    auth: auth("admin"),
    permissions: { publish: { allow: [">"] }, subscribe: { allow: [">"] } },
  };
  const users = [...fencelineUsers(nodes, auth), admin];
  const configFile = join(dir, "nats.conf");
  await writeFile(configFile, renderNatsConfig({ users, host: "127.0.0.1" }), { mode: 0o600 });

  const lines: string[] = [];
  const serverLog = { debug: (_: unknown, line: string) => void lines.push(line) } as unknown as Logger;
  const server = await startNatsServer({ configFile, log: serverLog });
  const opened: NatsConnection[] = [];
  const url = (user: string) => userUrl(user, passwords[user] ?? "unknown", `127.0.0.1:${server.port}`);
  const agentOf = new Map(nodes.map((n) => [agentUser(n), n]));
  return {
    server,
    configFile,
    passwords,
    url,
    async connectAs(user) {
      const node = agentOf.get(user);
      const nc = await connectNats(url(user), { name: user, ...(node ? { inboxPrefix: agentInboxPrefix(node) } : {}) });
      opened.push(nc);
      return nc;
    },
    violations() {
      const out: Violation[] = [];
      for (const line of lines) {
        // nats-server ≥ 2.10 logs `"<account>/user:<name>" - Publish Violation - Subject "<subject>"`.
        const m = /"[^"/]*\/user:([^"]+)" - (Publish|Subscription) Violation - Subject "([^"]+)"/.exec(line);
        if (m) out.push({ user: m[1]!, operation: m[2] as Violation["operation"], subject: m[3]! });
      }
      return out;
    },
    async stop() {
      await Promise.allSettled(opened.map((c) => (c.isClosed() ? Promise.resolve() : c.close())));
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves with the first permission error the connection reports for `subject` (or null after `ms`). */
export function permissionError(nc: NatsConnection, subject: string, ms = 2_000): Promise<PermissionViolationError | null> {
  return new Promise((resolve) => {
    // Typed as AsyncIterable, but nats-core's status() returns its QueuedIterator: stop() ends the
    // loop below and unregisters the listener, also while it waits for the next status.
    const iterator = nc.status() as QueuedIterator<Status>;
    const timer = setTimeout(() => {
      iterator.stop();
      resolve(null);
    }, ms);
    void (async () => {
      for await (const s of iterator) {
        if (
          s.type === "error" &&
          s.error.name === "PermissionViolationError" &&
          (s.error as PermissionViolationError).subject === subject
        ) {
          clearTimeout(timer);
          iterator.stop();
          resolve(s.error as PermissionViolationError);
          return;
        }
      }
    })();
  });
}

/**
 * The control plane split by role, each on its own connection and NATS user: streams
 * provisioned by the engine user, the engine, the heartbeat detector (and node state service),
 * and the actuators (fleet guard, cluster on an in-memory cluster, agent relay, provisioner).
 */
export async function startRoleControlPlane(lab: SecureServer, options: { policy: Policy; nodes: string[]; clock?: Clock; log?: Logger }) {
  const { policy } = options;
  const clock = options.clock ?? systemClock;
  const log = options.log ?? testLog("control-plane");
  const engineNc = await lab.connectAs("engine");
  await provisionStreams(engineNc);
  const engine: RunningEngine = await runEngine({ nc: engineNc, policy, log: log.child({ role: "engine" }), clock });
  const membership = await runMembershipKeeper({
    nc: await lab.connectAs("detector"),
    witness: policy.fleet.witness,
    log: log.child({ role: "detector" }),
  });
  const detector = await runHeartbeatDetector({
    nc: await lab.connectAs("detector"),
    timeoutMs: policy.heartbeat.timeoutMs,
    log: log.child({ role: "detector" }),
    clock,
  });

  const actuatorNc = await lab.connectAs("actuator");
  const cluster = new InMemoryCluster({ clock, nodes: options.nodes });
  const provisioned: string[] = [];
  const { actuators, fleet } = await createActuators({
    nc: actuatorNc,
    policy,
    log: log.child({ role: "actuator" }),
    clock,
    cluster,
    provisioner: {
      run: async (step, node) => {
        provisioned.push(`${step} ${node}`);
        return { ok: true, output: `${step} done` };
      },
    },
  });
  const runners = actuators.map((actuator) =>
    runActuator({ nc: actuatorNc, actuator, log: log.child({ role: `actuator-${actuator.name}` }) }),
  );
  return {
    engine,
    detector,
    cluster,
    actuators,
    fleet,
    provisioned,
    async stop() {
      await Promise.all(runners.map((r) => r.stop()));
      await detector.stop();
      await membership.stop();
      await engine.stop();
      await fleet.stop();
    },
  };
}

export type TestAgent = {
  node: string;
  nc: NatsConnection;
  transport: AgentTransport;
  /** Commands the agent received (answered ok). */
  commands: Array<CommandOf<"watchdog.stop">>;
  acks: number;
  lastAck: HeartbeatAck | undefined;
  beating: boolean;
  bootId: string;
  incarnation: number;
  seq: number;
  /** Sends one heartbeat now (the loop sends one every interval while `beating`). */
  beat(overrides?: Partial<Heartbeat>): void;
  stop(): Promise<void>;
};

/**
 * The node agent's NATS side (the real transport) on its own NATS user: heartbeats every
 * `intervalMs` while `beating`, acks counted, watchdog.stop commands recorded and answered ok.
 */
export async function startTestAgent(
  lab: SecureServer,
  node: string,
  options: { intervalMs: number; bootId?: string; incarnation?: number; log?: Logger },
): Promise<TestAgent> {
  const nc = await lab.connectAs(agentUser(node));
  const transport = createNatsAgentTransport({ nc, node, log: (options.log ?? testLog("agent")) as never });
  const agent: TestAgent = {
    node,
    nc,
    transport,
    commands: [],
    acks: 0,
    lastAck: undefined,
    beating: true,
    bootId: options.bootId ?? `boot-${node}-1`,
    incarnation: options.incarnation ?? 1,
    seq: 0,
    beat(overrides = {}) {
      transport.sendHeartbeat({
        v: 1,
        node,
        bootId: agent.bootId,
        incarnation: agent.incarnation,
        seq: agent.seq++,
        sentAt: Date.now(),
        ...overrides,
      });
    },
    async stop() {
      clearInterval(timer);
      await transport.close();
    },
  };
  transport.onAck((ack) => {
    agent.acks++;
    agent.lastAck = ack;
  });
  transport.onCommand(async (command) => {
    agent.commands.push(command);
    return { ok: true };
  });
  const timer = setInterval(() => {
    if (agent.beating) agent.beat();
  }, options.intervalMs);
  return agent;
}

/** Every message a stream holds, in order (see ../engine/nats-helpers.ts), read over `nc`. */
export const readStream = async (nc: NatsConnection, stream: string): Promise<StoredMsg[]> =>
  readStreamOf(await jetstreamManager(nc), stream);

export const messageCount = async (nc: NatsConnection, stream: string): Promise<number> =>
  messageCountOf(await jetstreamManager(nc), stream);

/** FL_NODES as node → { value, revision } (keys from the bucket stream's subjects: one request). */
export async function readNodes(nc: NatsConnection): Promise<Map<string, { value: unknown; revision: number }>> {
  const kv = await new Kvm(nc).open(Buckets.nodes);
  const jsm = await jetstreamManager(nc);
  const prefix = `$KV.${Buckets.nodes}.`;
  const info = await jsm.streams.info(`KV_${Buckets.nodes}`, { subjects_filter: `${prefix}>` });
  const out = new Map<string, { value: unknown; revision: number }>();
  for (const key of Object.keys(info.state.subjects ?? {})
    .map((s) => s.slice(prefix.length))
    .sort()) {
    const entry = await kv.get(key);
    if (entry && entry.operation === "PUT") out.set(key, { value: parseOrText(entry.string()), revision: entry.revision });
  }
  return out;
}

function parseOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
