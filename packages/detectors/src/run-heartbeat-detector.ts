import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  Heartbeat,
  nodeFromToken,
  parseMessage,
  parseSnapshotHead,
  systemClock,
  type Clock,
  type HeartbeatAck,
} from "@fenceline/contracts";
import { publishDeadLetter, publishEvent, watchMembership, type Logger } from "@fenceline/bus";
import { Buckets, Subjects } from "@fenceline/streams";
import { heartbeatAck } from "./heartbeat-ack.js";
import { createHeartbeatDetector } from "./heartbeat-detector.js";
import { FORGOTTEN_STATE } from "./membership-keeper.js";
import { runNodeStateService } from "./node-state-service.js";

/**
 * Runs the heartbeat detector on NATS: subscribes to `fl.hb.*`, answers each heartbeat with an
 * ack (the agent's proof that the control plane hears it, carrying the node's recorded state and
 * the membership view when the agent's is older, see `heartbeatAck`), and publishes node events
 * to FL_EVENTS. The last heartbeat of a cleanly stopping agent (`stopping`) is answered only
 * once the withdrawal of its contract is stored. Also runs the node state service
 * (`fl.state.<node>`), which agents ask on behalf of their peers.
 */
export async function runHeartbeatDetector(options: {
  nc: NatsConnection;
  timeoutMs: number;
  log: Logger;
  clock?: Clock;
  tickMs?: number;
}) {
  const { nc, log } = options;
  const clock = options.clock ?? systemClock;
  const js = jetstream(nc);
  const nodesKv = await new Kvm(nc).open(Buckets.nodes);
  const states = new Map<string, { path: string; bootId: string | null }>();
  const membership = await watchMembership(nc, { log });
  const detector = createHeartbeatDetector({
    clock,
    timeoutMs: options.timeoutMs,
    publish: async (event) => {
      await publishEvent(js, event);
      log.info({ node: event.node, event: event.type }, `${event.node}: ${event.type}`);
    },
  });

  // The engine's snapshots tell which nodes exist (seed after a restart) and their state (for acks).
  const watch = await nodesKv.watch();
  const seeded = (async () => {
    for await (const entry of watch) {
      if (entry.operation !== "PUT") {
        states.delete(nodeFromToken(entry.key));
        continue;
      }
      // A malformed entry is skipped (see parseSnapshotHead).
      const snap = parseSnapshotHead(entry.value);
      if (!snap) {
        log.warn({ key: entry.key, revision: entry.revision }, "ignoring a malformed FL_NODES entry");
        continue;
      }
      const forgotten = snap.path.split(".")[0] === FORGOTTEN_STATE;
      const wasForgotten = states.get(snap.node)?.path.split(".")[0] === FORGOTTEN_STATE;
      states.set(snap.node, { path: snap.path, bootId: snap.context.bootId ?? null });
      // Forgotten: its agent, if it still runs, joins again with its next heartbeat.
      if (forgotten && !wasForgotten) detector.forget(snap.node);
    }
  })();

  // Give the KV watch a moment to deliver existing snapshots, then seed.
  await new Promise((r) => setTimeout(r, 200));
  detector.seed(
    [...states.entries()].filter(([, s]) => s.path.split(".")[0] !== FORGOTTEN_STATE).map(([node, s]) => ({ node, bootId: s.bootId })),
  );
  await membership.ready;

  const stateService = await runNodeStateService({ nc, log, clock });

  const sub = nc.subscribe(Subjects.heartbeatAll, {
    callback: (err, msg) => {
      if (err) return;
      const parsed = parseMessage(Heartbeat, msg.data);
      const subjectNode = nodeFromToken(msg.subject.split(".")[2] ?? "");
      if (!parsed.ok || parsed.value.node !== subjectNode) {
        const reason = parsed.ok ? "forbidden" : parsed.reason;
        const error = parsed.ok ? `heartbeat for "${parsed.value.node}" on the subject of "${subjectNode}"` : parsed.error;
        publishDeadLetter(nc, "heartbeat-detector", msg.subject, msg.data, reason, error, { log }).catch(() => {});
        return;
      }
      const hb = parsed.value;
      // A replayed (or long-delayed) heartbeat: dead-lettered, not acked, no event.
      const stale = detector.staleReason(hb);
      if (stale !== null) {
        publishDeadLetter(nc, "heartbeat-detector", msg.subject, msg.data, "stale", stale, { log }).catch(() => {});
        return;
      }
      const ack = (withdrawn: boolean): HeartbeatAck =>
        heartbeatAck(hb, { at: clock.now(), state: states.get(hb.node)?.path, membership: membership.current(), withdrawn });
      if (hb.stopping) {
        // The agent disarms its watchdog on this answer: only once the engine will know.
        detector.onHeartbeat(hb).then(
          () => {
            log.info({ node: hb.node }, `${hb.node}: agent stopping, contract withdrawn`);
            if (msg.reply) msg.respond(JSON.stringify(ack(true)));
          },
          (e: unknown) => log.warn({ err: e, node: hb.node }, "cannot record a stopping agent's withdrawal: not answering it"),
        );
        return;
      }
      detector.onHeartbeat(hb).catch((e) => log.warn({ err: e, node: hb.node }, "cannot publish a heartbeat event"));
      if (msg.reply) msg.respond(JSON.stringify(ack(false)));
    },
  });

  let running = true;
  // While this connection is down the detector hears nobody; that silence is its own, not the
  // nodes'. It stops judging, and on reconnect gives every node a fresh timeout.
  let connected = true;
  const statusWatch = (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") {
        connected = false;
        log.warn("heartbeat detector lost NATS: not reporting missed heartbeats until it is back");
      } else if (status.type === "reconnect") {
        detector.resync();
        connected = true;
        log.info("heartbeat detector reconnected: every node gets a fresh timeout");
      }
    }
  })();
  const tickMs = options.tickMs ?? Math.max(50, Math.floor(options.timeoutMs / 5));
  const loop = (async () => {
    while (running) {
      await new Promise((r) => setTimeout(r, tickMs));
      if (!connected) continue;
      await detector.tick().catch((e) => log.warn({ err: e }, "cannot publish a missed-heartbeat event; will retry"));
    }
  })();

  return {
    detector,
    async stop() {
      running = false;
      sub.unsubscribe();
      await stateService.stop();
      watch.stop();
      await membership.stop();
      await loop;
      await seeded.catch(() => {});
      void statusWatch;
    },
  };
}
