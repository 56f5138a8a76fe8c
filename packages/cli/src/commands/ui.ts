import type { NatsConnection } from "@nats-io/transport-node";
import { AuditRecord, DEFAULT_POLICY, ErrorCode, FencelineError, type Policy } from "@fenceline/contracts";
import { connectNats } from "@fenceline/bus";
import { Subjects } from "@fenceline/streams";
import { exportMachine } from "@fenceline/statecharts";
import { createFencelineMetrics, trackConnection, watchMetrics, type NodeSnapshot } from "@fenceline/engine";
import { startVisualizerServer, type NodeRow, type VisualizerServer } from "@fenceline/visualizer";
import { commandResultsOf, nodeTimeline, readAuditRecords, readEvents, readNodeSnapshots } from "@fenceline/read-model";
import { parse, serverUrl, UsageError } from "@fenceline/command-line";
import { loadPolicy } from "../policy-file.js";
import { BUILTIN_POLICIES } from "./replay.js";

const USAGE = `usage: fenceline ui [--server nats://host:port] [--port N] [--host 127.0.0.1] [--policy policy.json]

Serves the web page against a running system: the lifecycle statechart with the number of
nodes in each state, the live node table, each node's timeline, a replay scrubber and the fleet
chart; also /metrics. Works offline (everything is bundled). Prints the address.
  --port N       port to listen on (default 9465; 0 picks a free one)
  --host H       address to listen on (default 127.0.0.1)
  --policy FILE  the policy whose statechart is drawn (default: the one the audit names)`;

const readSnapshots = (nc: NatsConnection) =>
  // Parsed like every message; an invalid value is left out (and named on stderr).
  readNodeSnapshots(nc, { onInvalid: (_node, err) => console.error(`fenceline ui: ${err.message}`) });

const rowOf = (s: NodeSnapshot): NodeRow => ({
  node: s.node,
  state: s.path,
  since: s.context.since,
  epoch: s.context.epoch,
  lastSeq: s.lastSeq,
  hostGroup: s.context.hostGroup ?? null,
  bootId: s.context.bootId ?? null,
  note: s.context.operatorReason ?? s.context.pausedReason ?? null,
});

/**
 * Serves the visualizer against the system on `nc`: audit history and live records from
 * FL_AUDIT, node rows from FL_NODES, timelines joined with command results from FL_EVENTS, and
 * metrics computed from the streams.
 */
export async function startUi(options: {
  nc: NatsConnection;
  natsUrl: string;
  policy?: Policy;
  port?: number;
  host?: string;
}): Promise<VisualizerServer> {
  const { nc } = options;
  const metrics = createFencelineMetrics({ natsConnected: trackConnection(nc) });
  const watch = watchMetrics({ nc, metrics, audit: false });
  let policy = options.policy;
  // The live subscription starts before the history is read: count each record once.
  const seen = new Set<number>();
  const observe = (r: AuditRecord) => {
    if (seen.has(r.seq)) return;
    seen.add(r.seq);
    metrics.observeAudit(r);
  };
  const server = await startVisualizerServer({
    ...(options.port !== undefined ? { port: options.port } : {}),
    ...(options.host !== undefined ? { host: options.host } : {}),
    source: {
      statechart: () => exportMachine(policy ?? DEFAULT_POLICY),
      async loadAudit() {
        const records = await readAuditRecords(nc);
        policy ??= BUILTIN_POLICIES[records.at(-1)?.policyVersion ?? ""] ?? DEFAULT_POLICY;
        try {
          metrics.seed(await readSnapshots(nc));
        } catch {
          // no FL_NODES yet
        }
        for (const r of records) observe(r);
        return records;
      },
      subscribeAudit(onRecord) {
        const sub = nc.subscribe(Subjects.auditAll, {
          callback: (err, msg) => {
            if (err) return;
            try {
              const parsed = AuditRecord.safeParse(msg.json());
              if (!parsed.success) return;
              observe(parsed.data);
              onRecord(parsed.data);
            } catch {
              // not JSON
            }
          },
        });
        return () => sub.unsubscribe();
      },
      snapshot: async () =>
        (await readSnapshots(nc).catch(() => [] as NodeSnapshot[]))
          .map(rowOf)
          .sort((a, b) => a.node.localeCompare(b.node, undefined, { numeric: true })),
      async timeline(node, records) {
        const events = await readEvents(nc, node);
        return nodeTimeline(node, records, commandResultsOf(events), Date.now());
      },
      metrics: () => metrics.render(),
      info: () => ({ nats: options.natsUrl, policyVersion: (policy ?? DEFAULT_POLICY).version }),
    },
  });
  return {
    ...server,
    async close() {
      watch.stop();
      await server.close();
    },
  };
}

export async function uiCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    { server: { type: "string" }, port: { type: "string" }, host: { type: "string" }, policy: { type: "string" } },
    USAGE,
  );
  if (values.help) return (console.log(USAGE), 0);
  const port = values.port === undefined ? 9465 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new UsageError(`--port must be an integer from 0 to 65535\n\n${USAGE}`);
  const url = serverUrl(values.server as string | undefined);
  const nc = await connectNats(url, { name: "fenceline-ui" });
  let ui: VisualizerServer;
  try {
    ui = await startUi({
      nc,
      natsUrl: url,
      port,
      host: (values.host as string | undefined) ?? "127.0.0.1",
      ...(values.policy ? { policy: loadPolicy(values.policy as string) } : {}),
    });
  } catch (err) {
    await nc.close();
    if ((err as NodeJS.ErrnoException).code === "EADDRINUSE")
      throw new FencelineError(ErrorCode.Forbidden, `port ${port} is in use: pass --port N (0 picks a free one)`);
    throw err;
  }
  console.log(`fenceline ui: ${ui.url}  (NATS ${url}; Ctrl-C to stop)`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await ui.close();
  await nc.drain().catch(() => {});
  return 0;
}

/** The UI with its own NATS connection (for `demo --hold`); `close` closes both. */
export async function startUiAt(
  natsUrl: string,
  options: { policy?: Policy; port?: number; host?: string } = {},
): Promise<VisualizerServer> {
  const nc = await connectNats(natsUrl, { name: "fenceline-ui" });
  try {
    const ui = await startUi({ nc, natsUrl, ...options });
    return {
      ...ui,
      async close() {
        await ui.close();
        await nc.close();
      },
    };
  } catch (err) {
    await nc.close();
    throw err;
  }
}
