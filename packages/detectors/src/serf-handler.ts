import { createHash } from "node:crypto";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { deadLetter, systemClock, type Clock } from "@fenceline/contracts";
import { connectNats, createLogger, publishDeadLetter, publishEvent } from "@fenceline/bus";
import { Buckets } from "@fenceline/streams";
import { parseSerfMembers, SERF_ID_WINDOW_MS, translateSerfEvent, type SerfRejected } from "./serf-events.js";

export const SERF_DLQ_SOURCE = "serf-handler";

export interface SerfHandlerOptions {
  /** The environment serf sets: SERF_EVENT, SERF_SELF_NAME, ... */
  env: Record<string, string | undefined>;
  /** Everything serf wrote on stdin. */
  stdin: string;
  /** NATS URL (comma-separated list allowed). */
  server: string;
  /** Take node names from this member tag when present. */
  nodeTag?: string;
  /** Overall bound on connecting and publishing. Default 10s. */
  timeoutMs?: number;
  clock?: Clock;
  /** One line each; the CLI writes them to stderr, which serf logs. */
  say: (line: string) => void;
  /** An already open connection (tests); the handler connects itself otherwise. */
  nc?: NatsConnection;
}

export interface SerfHandlerOutcome {
  /** 0: done (including events that were ignored or rejected); 1: NATS or a publish failed. */
  exitCode: number;
  published: Array<{ node: string; type: string; id: string; duplicate: boolean }>;
  skipped: Array<{ node: string; why: string }>;
  rejected: SerfRejected[];
}

/**
 * `fenceline serf-handler`: serf's event handler. Turns membership events into node events on
 * FL_EVENTS (see serf-events.ts for the mapping). Only nodes the engine knows (a snapshot in
 * FL_NODES) get events: a serf member that is not a Fenceline node (the control-plane host's
 * own serf agent, say) must not become a phantom node counted in the fleet's healthy majority.
 * Invalid member lines are dead letters (stderr and FL_DLQ `fl.dlq.serf-handler`); they never
 * fail the handler. Exits 1 only when NATS cannot be reached or an event is not stored within
 * the timeout, so serf logs the failure.
 */
export async function runSerfHandler(options: SerfHandlerOptions): Promise<SerfHandlerOutcome> {
  const clock = options.clock ?? systemClock;
  const { say, env } = options;
  const now = Math.floor(clock.now());
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  const outcome: SerfHandlerOutcome = { exitCode: 0, published: [], skipped: [], rejected: [] };
  const serfEvent = env.SERF_EVENT;

  const { members, rejected: unparsable } = parseSerfMembers(options.stdin);
  const translation = translateSerfEvent({
    event: serfEvent,
    members,
    now,
    ...(env.SERF_SELF_NAME ? { self: env.SERF_SELF_NAME } : {}),
    ...(options.nodeTag !== undefined ? { nodeTag: options.nodeTag } : {}),
  });
  if (translation.ignored) {
    say(`ignored: ${translation.ignored}`);
    return outcome;
  }
  outcome.rejected = [...unparsable, ...translation.rejected];
  const pseudoSubject = `serf.${serfEvent}`;
  for (const bad of outcome.rejected) {
    const record = deadLetter(pseudoSubject, new TextEncoder().encode(bad.line), "schema", bad.error, now);
    say(`dead letter: ${JSON.stringify(record)}`);
  }
  if (translation.events.length === 0 && outcome.rejected.length === 0) {
    say(`${serfEvent}: no members on stdin, nothing to do`);
    return outcome;
  }

  let nc = options.nc;
  const own = nc === undefined;
  try {
    if (!nc) {
      try {
        nc = await connectNats(options.server, {
          name: `fenceline-serf-handler-${env.SERF_SELF_NAME ?? "unknown"}`,
          timeoutMs: Math.max(500, deadline - Date.now()),
        });
      } catch (err) {
        say(`cannot publish ${translation.events.length} event(s): ${(err as Error).message}`);
        outcome.exitCode = 1;
        return outcome;
      }
    }
    const js = jetstream(nc);
    for (const bad of outcome.rejected) {
      await publishDeadLetter(js, SERF_DLQ_SOURCE, pseudoSubject, new TextEncoder().encode(bad.line), "schema", bad.error, {
        at: now,
        msgID: `dlq:serf:${createHash("sha256")
          .update(`${serfEvent}\n${Math.floor(now / SERF_ID_WINDOW_MS)}\n${bad.line}`)
          .digest("hex")
          .slice(0, 32)}`,
        log: createLogger("serf-handler", { level: "silent" }),
      }).catch((err: unknown) => say(`cannot store the dead letter: ${(err as Error).message}`));
    }
    const nodes = await new Kvm(nc).open(Buckets.nodes);
    for (const { event } of translation.events) {
      const known = await withRetry(() => nodes.get(event.node), deadline).catch((err: unknown) => err as Error);
      if (known instanceof Error) {
        say(`${event.node}: cannot check FL_NODES: ${known.message}`);
        outcome.exitCode = 1;
        continue;
      }
      if (!known || known.operation !== "PUT") {
        const why = "not a Fenceline node (the engine has no snapshot of it): ignored";
        outcome.skipped.push({ node: event.node, why });
        say(`${serfEvent} ${event.node}: ${why}`);
        continue;
      }
      try {
        const ack = await withRetry(() => publishEvent(js, event), deadline);
        outcome.published.push({ node: event.node, type: event.type, id: event.id, duplicate: ack.duplicate });
        say(`${serfEvent} ${event.node}: ${event.type} ${event.id}${ack.duplicate ? " (already stored)" : ""} → FL_EVENTS #${ack.seq}`);
      } catch (err) {
        say(`${serfEvent} ${event.node}: ${event.type} not stored: ${(err as Error).message}`);
        outcome.exitCode = 1;
      }
    }
    return outcome;
  } finally {
    if (own && nc) await nc.drain().catch(() => nc?.close());
  }
}

/** Retries `op` every 250 ms until it succeeds or the deadline passes (then rethrows). */
async function withRetry<T>(op: () => Promise<T>, deadline: number): Promise<T> {
  for (;;) {
    try {
      return await op();
    } catch (err) {
      if (Date.now() + 250 >= deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}
