import { promises as fs } from "node:fs";
import type { NatsConnection } from "@nats-io/transport-node";
import { ErrorCode, isFencelineError, systemClock, type Clock } from "@fenceline/contracts";
import { connectNats, createLogger, redactUrl } from "@fenceline/bus";
import type { Logger } from "pino";
import { createAgent, type Agent } from "./agent.js";
import { agentOptionsOf } from "./options-from-config.js";
import { nextIncarnation, readBootId } from "./boot-identity.js";
import { createChecksummer } from "./checksums.js";
import { loadAgentConfig, type AgentConfig } from "./config.js";
import { createDeferredAgentTransport } from "./deferred-transport.js";
import { createHttpPeerTransport, type HttpPeerTransport } from "./http-peers.js";
import { agentInboxPrefix } from "@fenceline/streams";
import { createNatsAgentTransport, requestNodeState } from "./nats-transport.js";
import { waitForGate } from "./boot-gate.js";
import { createFileSelfFenceStore } from "./self-fence-store.js";
import { createFileContactStore } from "./contact-store.js";
import { createFileMembershipStore } from "./membership-store.js";
import { selectWatchdog, type SelectedWatchdog } from "./watchdog/select-watchdog.js";

export interface RunningAgent {
  agent: Agent;
  config: AgentConfig;
  watchdogKind: SelectedWatchdog["kind"];
  /** Where the peer server listens (the real port when the config says 0). */
  peerAddress: { host: string; port: number };
  /** Whether the first NATS connection has been made (it is retried until it is). */
  natsConnected(): boolean;
  /** Stops the agent, closes its peer server and NATS connection. */
  shutdown(why: string): Promise<void>;
}

export interface StartAgentOptions {
  clock?: Clock;
  /** Time between attempts at the first NATS connection. Default 1s. */
  connectRetryMs?: number;
  /** How long one connection attempt may take. Default 2s. */
  connectTimeoutMs?: number;
}

/**
 * Starts an agent from a parsed config with the real adapters: NATS, the HTTP peer server, the
 * watchdog device (or the fallback reboot timer), the boot id and the state files. Throws on
 * any startup failure, after undoing what it had started.
 *
 * NATS being unreachable is not a startup failure: the agent starts anyway (its watchdog armed
 * and fed, the control plane counted as lost from the start, so it asks its peers and fences
 * itself by the usual rules) and keeps trying to connect. Resolves after the first attempt.
 */
export async function startAgent(config: AgentConfig, log: Logger, options: StartAgentOptions | Clock = {}): Promise<RunningAgent> {
  const { clock = systemClock, connectRetryMs = 1_000, connectTimeoutMs = 2_000 } = isClock(options) ? { clock: options } : options;
  const bootId = await readBootId(config.bootIdFile);
  const incarnation = await nextIncarnation(config.incarnationFile);
  log.info({ bootId, incarnation }, "agent identity");

  const undo: Array<() => Promise<unknown>> = [];
  const unwind = () => Promise.allSettled(undo.reverse().map((step) => step()));
  try {
    const tls = config.tls && {
      key: await fs.readFile(config.tls.keyFile),
      cert: await fs.readFile(config.tls.certFile),
      ca: await fs.readFile(config.tls.caFile),
    };
    const peers: HttpPeerTransport = createHttpPeerTransport({
      node: config.node,
      listen: config.peerListen,
      log,
      ...(tls ? { tls } : {}),
    });
    const peerAddress = await peers.listen();
    undo.push(() => peers.close());

    const selected = await selectWatchdog({
      path: config.watchdog.path,
      timeoutMs: config.timing.watchdogTimeoutMs,
      fallbackRebootCommand: config.watchdog.fallbackRebootCommand,
      ...(config.watchdog.sysfsDir !== undefined ? { sysfsDir: config.watchdog.sysfsDir } : {}),
      clock,
      log,
    });
    const deferred = createDeferredAgentTransport();
    const hasServices = Object.keys(config.services).length > 0;
    const agent = createAgent(
      agentOptionsOf(config, {
        bootId,
        incarnation,
        membership: createFileMembershipStore(config.membershipFile),
        peerPort: peerAddress.port,
        transport: deferred.transport,
        peers,
        watchdog: selected.watchdog,
        watchdogKind: selected.watchdogKind,
        clock,
        selfFenceStore: createFileSelfFenceStore(config.selfFenceFile),
        contactStore: createFileContactStore(config.contactFile),
        log,
        ...(hasServices
          ? { checksums: createChecksummer({ services: config.services, commandTimeoutMs: config.checksumCommandTimeoutMs }) }
          : {}),
      }),
    );
    await agent.start();
    undo.push(() => agent.stop());

    const link = connectInBackground({
      url: config.nats.url,
      name: `fenceline-agent-${config.node}`,
      inboxPrefix: agentInboxPrefix(config.node),
      log,
      retryMs: connectRetryMs,
      timeoutMs: connectTimeoutMs,
      onConnected: (nc) => deferred.attach(createNatsAgentTransport({ nc, node: config.node, log, clock })),
    });
    await link.firstAttempt;
    // A server too old for Fenceline is a deployment error: the agent does not start.
    const refused = link.refused();
    if (refused) throw refused;

    let stopping: Promise<void> | undefined;
    const shutdown = (why: string) =>
      (stopping ??= (async () => {
        log.info({ why }, "shutting down");
        const fenced = agent.state().selfFenced;
        await agent.stop();
        // The fallback timer dies with this process: a fenced node must still go down.
        if (fenced && selected.kind === "fallback") await selected.watchdog.rebootNow("agent stopped while fenced");
        await link.stop();
      })());
    return { agent, config, watchdogKind: selected.kind, peerAddress, natsConnected: () => link.connected(), shutdown };
  } catch (err) {
    await unwind();
    throw err;
  }
}

function isClock(value: StartAgentOptions | Clock): value is Clock {
  return typeof (value as Clock).now === "function";
}

interface BackgroundLink {
  /** Settles after the first attempt, whether it connected or not. */
  firstAttempt: Promise<void>;
  connected(): boolean;
  /** The error of a first attempt that reached a server too old for Fenceline (no retries then). */
  refused(): Error | undefined;
  /** Stops retrying; drains the connection if there is one. */
  stop(): Promise<void>;
}

/**
 * Makes the first NATS connection, retrying every `retryMs` until it succeeds or `stop` is
 * called; once connected, the client reconnects by itself forever (connectNats).
 */
function connectInBackground(options: {
  url: string;
  name: string;
  log: Logger;
  retryMs: number;
  timeoutMs: number;
  onConnected: (nc: NatsConnection) => void;
  inboxPrefix: string;
}): BackgroundLink {
  const { log } = options;
  const url = options.url;
  // Logged without its password (credentials may be given as nats://user:password@host).
  const shownUrl = redactUrl(url);
  let nc: NatsConnection | undefined;
  let stopped = false;
  let refused: Error | undefined;
  let wake: (() => void) | undefined;
  let markFirst: () => void = () => {};
  const firstAttempt = new Promise<void>((resolve) => (markFirst = resolve));

  const loop = (async () => {
    for (let attempt = 1; !stopped; attempt++) {
      try {
        const connection = await connectNats(url, {
          name: options.name,
          timeoutMs: options.timeoutMs,
          log,
          inboxPrefix: options.inboxPrefix,
        });
        if (stopped) {
          await connection.close();
          break;
        }
        nc = connection;
        log.info({ url: shownUrl, attempt }, "connected to NATS");
        options.onConnected(connection);
        break;
      } catch (err) {
        const message = (err as Error).message;
        if (isFencelineError(err, ErrorCode.NatsServerTooOld)) {
          // Said every time: the agent keeps its watchdog and self-fencing rules meanwhile.
          log.error({ url: shownUrl, attempt }, message);
          if (attempt === 1) {
            refused = err;
            break;
          }
        } else if (attempt === 1) {
          log.warn(
            { url: shownUrl, retryMs: options.retryMs },
            `${message}; the agent runs without the control plane (watchdog fed, self-fencing rules apply) and keeps trying`,
          );
        } else {
          log.debug({ url: shownUrl, attempt }, message);
        }
      } finally {
        markFirst();
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.retryMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  })();

  return {
    firstAttempt,
    connected: () => nc !== undefined,
    refused: () => refused,
    stop: async () => {
      stopped = true;
      wake?.();
      await loop;
      if (nc) await nc.drain().catch(() => nc?.close());
    },
  };
}

/**
 * `fenceline agent --config <file>`: runs until SIGTERM or SIGINT. Every fatal condition logs
 * one line and exits with status 1.
 */
export async function runAgent(configPath: string): Promise<void> {
  const bootstrapLog = createLogger("fenceline-agent");
  // Listening before the start: the watchdog is armed early in startAgent, and a signal taken by
  // Node's default handler there would end the process without the agent's shutdown.
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  let running: RunningAgent;
  try {
    const config = await loadAgentConfig(configPath);
    const log = createLogger("fenceline-agent", { level: config.logLevel }).child({ node: config.node });
    log.info({ configPath }, "starting the agent");
    running = await startAgent(config, log);
  } catch (err) {
    return exitFatally(bootstrapLog, err);
  }
  const signal = await signalled;
  await running.shutdown(signal).catch((err: unknown) => exitFatally(bootstrapLog, err));
}

/**
 * `fenceline agent --config <file> --gate`: waits until the control plane says this node may
 * start its workloads (`waitForGate`), printing why it waits; resolves with the exit status: 0
 * once open, 1 when `timeoutMs` ran out first.
 */
export async function runGate(configPath: string, options: { timeoutMs?: number; intervalMs?: number } = {}): Promise<number> {
  const config = await loadAgentConfig(configPath);
  const log = createLogger("fenceline-agent", { level: config.logLevel }).child({ node: config.node, gate: true });
  let nc: NatsConnection | undefined;
  const lookup = async () => {
    if (!nc || nc.isClosed()) {
      nc = await connectNats(config.nats.url, {
        name: `fenceline-gate-${config.node}`,
        timeoutMs: 2_000,
        log,
        inboxPrefix: agentInboxPrefix(config.node),
      });
    }
    return requestNodeState(nc, config.node, 2_000);
  };
  let last = "";
  try {
    const verdict = await waitForGate({
      lookup,
      ...(options.intervalMs !== undefined ? { intervalMs: options.intervalMs } : {}),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      onWait: (why) => {
        if (why !== last) process.stderr.write(`fenceline agent --gate: ${config.node} waits: ${why}\n`);
        last = why;
      },
    });
    process.stdout.write(
      `fenceline agent --gate: ${config.node} ${verdict.open ? "may start its workloads" : "gave up"}: ${verdict.why}\n`,
    );
    return verdict.open ? 0 : 1;
  } finally {
    await nc?.close().catch(() => {});
  }
}

function exitFatally(log: Logger, err: unknown): never {
  const message = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, " ").trim();
  log.fatal({ err }, message);
  process.stderr.write(`fenceline agent: ${message}\n`);
  process.exit(1);
}
