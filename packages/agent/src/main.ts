import { promises as fs } from "node:fs";
import type { NatsConnection } from "@nats-io/transport-node";
import { systemClock, type Clock } from "@fenceline/contracts";
import { connectNats, createLogger } from "@fenceline/bus";
import type { Logger } from "pino";
import { createAgent, type Agent } from "./agent.js";
import { nextIncarnation, readBootId } from "./boot-identity.js";
import { createChecksummer } from "./checksums.js";
import { loadAgentConfig, type AgentConfig } from "./config.js";
import { createHttpPeerTransport, type HttpPeerTransport } from "./http-peers.js";
import { createNatsAgentTransport } from "./nats-transport.js";
import { createFileSelfFenceStore } from "./self-fence-store.js";
import { selectWatchdog, type SelectedWatchdog } from "./watchdog/select-watchdog.js";

export interface RunningAgent {
  agent: Agent;
  config: AgentConfig;
  watchdogKind: SelectedWatchdog["kind"];
  /** Where the peer server listens (the real port when the config says 0). */
  peerAddress: { host: string; port: number };
  /** Stops the agent, closes its peer server and NATS connection. */
  shutdown(why: string): Promise<void>;
}

/**
 * Starts an agent from a parsed config with the real adapters: NATS, the HTTP peer server, the
 * watchdog device (or the fallback reboot timer), the boot id and the state files. Throws on
 * any startup failure, after undoing what it had started.
 */
export async function startAgent(config: AgentConfig, log: Logger, clock: Clock = systemClock): Promise<RunningAgent> {
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
      peers: config.peers,
      log,
      ...(tls ? { tls } : {}),
    });
    const peerAddress = await peers.listen();
    undo.push(() => peers.close());

    const nc: NatsConnection = await connectNats(config.nats.url, { name: `fenceline-agent-${config.node}`, log });
    undo.push(() => nc.close());
    log.info({ url: config.nats.url }, "connected to NATS");
    const transport = createNatsAgentTransport({ nc, node: config.node, log, clock });

    const selected = await selectWatchdog({
      path: config.watchdog.path,
      timeoutMs: config.timing.watchdogTimeoutMs,
      fallbackRebootCommand: config.watchdog.fallbackRebootCommand,
      clock,
      log,
    });
    const hasServices = Object.keys(config.services).length > 0;
    const agent = createAgent({
      node: config.node,
      bootId,
      incarnation,
      timing: config.timing,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      peerNodes: config.peers.map((peer) => peer.node),
      fleetSize: config.fleetSize,
      transport,
      peers,
      watchdog: selected.watchdog,
      clock,
      selfFenceStore: createFileSelfFenceStore(config.selfFenceFile),
      log,
      checksumIntervalMs: config.checksumIntervalMs,
      ...(hasServices ? { checksums: createChecksummer({ services: config.services, commandTimeoutMs: config.checksumCommandTimeoutMs }) } : {}),
      ...(config.hostGroup !== undefined ? { hostGroup: config.hostGroup } : {}),
      ...(config.controlPlane !== undefined ? { controlPlane: config.controlPlane } : {}),
    });
    await agent.start();

    let stopping: Promise<void> | undefined;
    const shutdown = (why: string) =>
      (stopping ??= (async () => {
        log.info({ why }, "shutting down");
        const fenced = agent.state().selfFenced;
        await agent.stop();
        // The fallback timer dies with this process: a fenced node must still go down.
        if (fenced && selected.kind === "fallback") await selected.watchdog.rebootNow("agent stopped while fenced");
        await nc.drain().catch(() => nc.close());
      })());
    return { agent, config, watchdogKind: selected.kind, peerAddress, shutdown };
  } catch (err) {
    await unwind();
    throw err;
  }
}

/**
 * `fenceline agent --config <file>`: runs until SIGTERM or SIGINT. Every fatal condition logs
 * one line and exits with status 1.
 */
export async function runAgent(configPath: string): Promise<void> {
  const bootstrapLog = createLogger("fenceline-agent");
  let running: RunningAgent;
  try {
    const config = await loadAgentConfig(configPath);
    const log = createLogger("fenceline-agent", { level: config.logLevel }).child({ node: config.node });
    log.info({ configPath }, "starting the agent");
    running = await startAgent(config, log);
  } catch (err) {
    return exitFatally(bootstrapLog, err);
  }
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      running.shutdown(signal).then(resolve, (err: unknown) => exitFatally(bootstrapLog, err));
    };
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  });
}

function exitFatally(log: Logger, err: unknown): never {
  const message = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, " ").trim();
  log.fatal({ err }, message);
  process.stderr.write(`fenceline agent: ${message}\n`);
  process.exit(1);
}
