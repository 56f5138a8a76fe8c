import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { AuditRecord, ErrorCode, FencelineError, NodeEvent, nodeFromToken, parseSnapshotHead } from "@fenceline/contracts";
import { Buckets, Consumers, Streams, Subjects, eventPartitions } from "@fenceline/streams";
import { collectDefaultMetrics } from "prom-client";
import { createFencelineMetrics, PROMETHEUS_CONTENT_TYPE, type FencelineMetrics, type FleetStatus } from "./metrics.js";
import type { NodeSnapshot } from "./snapshot.js";

export type MetricsWatch = { refresh(): Promise<void>; stop(): void };

/**
 * Keeps the NATS-side metrics current: the engine consumers' lag (summed over partitions) and the dead-letter count
 * (polled), command results from FL_EVENTS and, when the engine does not run in this process,
 * the transitions from FL_AUDIT (core subscriptions: they see what is published from now on).
 */
export function watchMetrics(options: {
  nc: NatsConnection;
  metrics: FencelineMetrics;
  intervalMs?: number;
  /** Subscribe to fl.evt.> for command results (default true). */
  events?: boolean;
  /** Subscribe to fl.audit.> for transitions (when not fed by the engine's onApplied). */
  audit?: boolean;
  onError?: (err: unknown) => void;
}): MetricsWatch {
  const { nc, metrics } = options;
  const subs: Subscription[] = [];
  if (options.events ?? true) {
    subs.push(
      nc.subscribe(Subjects.eventAll, {
        callback: (err, msg) => {
          if (err) return;
          try {
            const parsed = NodeEvent.safeParse(msg.json());
            if (parsed.success) metrics.observeEvent(parsed.data);
          } catch {
            // not JSON: the engine dead-letters it
          }
        },
      }),
    );
  }
  if (options.audit) {
    subs.push(
      nc.subscribe(Subjects.auditAll, {
        callback: (err, msg) => {
          if (err) return;
          try {
            const parsed = AuditRecord.safeParse(msg.json());
            if (parsed.success) metrics.observeAudit(parsed.data);
          } catch {
            // ignore
          }
        },
      }),
    );
  }
  const refresh = async () => {
    const jsm = await jetstreamManager(nc);
    // The engine's lag: summed over its partition consumers (engine-<p>).
    const infos = await Promise.all(
      Array.from({ length: eventPartitions() }, (_, p) =>
        jsm.consumers.info(Streams.events, Consumers.enginePartition(p)).catch(() => null),
      ),
    );
    const found = infos.filter((i) => i !== null);
    if (found.length > 0) {
      metrics.setConsumerInfo(Streams.events, "engine", {
        pending: found.reduce((sum, i) => sum + i.num_pending, 0),
        ackPending: found.reduce((sum, i) => sum + i.num_ack_pending, 0),
      });
    }
    const dlq = await jsm.streams.info(Streams.deadLetters).catch(() => null);
    if (dlq) metrics.setDeadLetters(dlq.state.messages);
  };
  const run = () => refresh().catch((err) => options.onError?.(err));
  void run();
  const timer = setInterval(run, options.intervalMs ?? 5_000);
  timer.unref?.();
  return {
    refresh,
    stop() {
      clearInterval(timer);
      for (const s of subs) s.unsubscribe();
    },
  };
}

/**
 * Whether `nc` is connected now: false from a `disconnect` status until the next `reconnect`,
 * and once the connection is closed.
 */
export function trackConnection(nc: NatsConnection): () => boolean {
  let connected = true;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnecting" || s.type === "close") connected = false;
      else if (s.type === "reconnect") connected = true;
    }
  })().catch(() => {});
  return () => connected && !nc.isClosed();
}

/** A snapshot context's `guarantee`, if it is one. */
function guaranteeOf(value: unknown): { guarantee: "watchdog" | "power" | "none"; weak: boolean } | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const { guarantee, weak } = value as Record<string, unknown>;
  if ((guarantee !== "watchdog" && guarantee !== "power" && guarantee !== "none") || typeof weak !== "boolean") return undefined;
  return { guarantee, weak };
}

/**
 * Feeds nodes per state and each node's state-since from the snapshots in FL_NODES (every
 * node of the fleet, whichever engine instance owns it), until `stop()`.
 */
export async function watchNodeStates(nc: NatsConnection, metrics: FencelineMetrics): Promise<{ stop(): Promise<void> }> {
  const kv = await new Kvm(nc).open(Buckets.nodes);
  const watch = await kv.watch();
  const done = (async () => {
    for await (const entry of watch) {
      if (entry.operation !== "PUT") {
        metrics.forgetNode(nodeFromToken(entry.key));
        continue;
      }
      // A malformed entry is skipped (see parseSnapshotHead).
      const head = parseSnapshotHead(entry.value);
      const since = head?.context.since;
      if (!head || since === undefined) continue;
      const { hostGroup } = head.context;
      const guarantee = guaranteeOf(head.context.guarantee);
      metrics.observeSnapshot({
        node: head.node,
        path: head.path,
        since,
        ...(hostGroup !== undefined ? { hostGroup } : {}),
        ...(guarantee ? { guarantee } : {}),
      });
    }
  })();
  return {
    async stop() {
      watch.stop();
      await done.catch(() => {});
    },
  };
}

export type MetricsServer = { url: string; port: number; close(): Promise<void> };

/** Serves GET /metrics (Prometheus text format) on host:port (0 picks a free port). */
export async function serveMetrics(options: {
  port: number;
  host?: string;
  render: () => string | Promise<string>;
}): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" || path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: try /metrics\n");
      return;
    }
    Promise.resolve(options.render()).then(
      (text) => res.writeHead(200, { "content-type": PROMETHEUS_CONTENT_TYPE }).end(text),
      (err) => res.writeHead(500, { "content-type": "text/plain" }).end(`${(err as Error).message}\n`),
    );
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${port}/metrics`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export type MetricsEndpoint = {
  metrics: FencelineMetrics;
  /** Where /metrics is served, or null when disabled or the port could not be bound. */
  url: string | null;
  /** The engine's onApplied hook. */
  onApplied: FencelineMetrics["onApplied"];
  /**
   * Seeds nodes per state from the engine's recovered snapshots; `fleet` (the control plane's
   * fleet guard view) feeds the fleet and remediation-slot gauges from then on.
   */
  started(snapshots: NodeSnapshot[], fleet?: () => Promise<FleetStatus>, engine?: { partitions(): number[]; partitionCount: number }): void;
  stop(): Promise<void>;
};

/**
 * Metrics for a process that runs the engine (`fenceline up --metrics-port`): the registry,
 * the NATS watch and the HTTP endpoint. Port 0 disables it. A port that cannot be bound is
 * logged and the control plane runs on without metrics (they are not worth an outage).
 */
export async function startMetricsEndpoint(options: {
  nc: NatsConnection;
  port?: number | string;
  host?: string;
  log?: { warn(obj: object, msg?: string): void; info(obj: object, msg?: string): void };
}): Promise<MetricsEndpoint> {
  const port = options.port === undefined ? 9464 : Number(options.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new FencelineError(
      ErrorCode.InvalidMessage,
      `--metrics-port must be an integer from 0 to 65535 (0 turns metrics off), got "${options.port}"`,
    );
  }
  let fleet: (() => Promise<FleetStatus>) | null = null;
  let engine: { partitions(): number[]; partitionCount: number } | null = null;
  const metrics = createFencelineMetrics({
    states: "snapshots",
    natsConnected: trackConnection(options.nc),
    fleet: () => (fleet ? fleet() : Promise.reject(new Error("the control plane has not started yet"))),
    partitions: () => (engine ? { owned: engine.partitions().length, total: engine.partitionCount } : null),
  });
  if (port === 0)
    return { metrics, url: null, onApplied: metrics.onApplied, started: (snapshots) => metrics.seed(snapshots), stop: async () => {} };
  // The process's own CPU, memory, event loop and GC (process_*, nodejs_*), as every Node exporter has.
  collectDefaultMetrics({ register: metrics.registry });
  const host = options.host ?? "0.0.0.0";
  const watch = watchMetrics({
    nc: options.nc,
    metrics,
    onError: (err) => options.log?.warn({ err }, "cannot read stream info for metrics"),
  });
  let server: MetricsServer | null = null;
  let nodeStates: { stop(): Promise<void> } | null = null;
  try {
    server = await serveMetrics({ port, host, render: metrics.render });
    options.log?.info({ url: server.url }, "serving metrics");
  } catch (err) {
    options.log?.warn({ err, host, port }, `metrics not served: cannot listen on ${host}:${port} (${(err as Error).message})`);
  }
  return {
    metrics,
    url: server?.url ?? null,
    onApplied: metrics.onApplied,
    started(snapshots, fleetStatus, running) {
      metrics.seed(snapshots);
      if (fleetStatus) fleet = fleetStatus;
      if (running) engine = running;
      // FL_NODES exists now that the control plane provisioned it.
      watchNodeStates(options.nc, metrics).then(
        (w) => (nodeStates = w),
        (err) => options.log?.warn({ err }, "cannot watch FL_NODES for the node state metrics"),
      );
      // The streams exist now: read their state at once rather than at the next poll.
      watch.refresh().catch((err) => options.log?.warn({ err }, "cannot read stream info for metrics"));
    },
    async stop() {
      watch.stop();
      await nodeStates?.stop();
      await server?.close();
    },
  };
}
