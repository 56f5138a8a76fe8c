import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { Heartbeat, nodeFromToken, parseMessage, parseSnapshotHead, systemClock, type Clock, type HeartbeatAck } from "@fenceline/contracts";
import { publishDeadLetter, publishEvent, type Logger } from "@fenceline/bus";
import { Buckets, Subjects } from "@fenceline/streams";
import { createHeartbeatDetector } from "./heartbeat-detector.js";
import { runNodeStateService } from "./node-state-service.js";

/**
 * Runs the heartbeat detector on NATS: subscribes to `fl.hb.*`, answers each heartbeat with an
 * ack (the agent's proof that the control plane hears it, carrying the node's recorded state),
 * and publishes node events to FL_EVENTS. Also runs the node state service (`fl.state.<node>`),
 * which agents ask on behalf of their peers.
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

  // The engine's snapshots tell which nodes exist (seed after a restart) and their state (for acks).
  const watch = await nodesKv.watch();
  const seeded = (async () => {
    for await (const entry of watch) {
      if (entry.operation !== "PUT") {
        states.delete(entry.key);
        continue;
      }
      // A malformed entry is skipped (see parseSnapshotHead).
      const snap = parseSnapshotHead(entry.value);
      if (!snap) {
        log.warn({ key: entry.key, revision: entry.revision }, "ignoring a malformed FL_NODES entry");
        continue;
      }
      states.set(snap.node, { path: snap.path, bootId: typeof snap.context.bootId === "string" ? snap.context.bootId : null });
    }
  })();

  const detector = createHeartbeatDetector({
    clock,
    timeoutMs: options.timeoutMs,
    publish: async (event) => {
      await publishEvent(js, event);
      log.info({ node: event.node, event: event.type }, `${event.node}: ${event.type}`);
    },
  });
  // Give the KV watch a moment to deliver existing snapshots, then seed.
  await new Promise((r) => setTimeout(r, 200));
  detector.seed([...states.entries()].map(([node, s]) => ({ node, bootId: s.bootId })));

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
      detector.onHeartbeat(hb).catch((e) => log.warn({ err: e, node: hb.node }, "cannot publish a heartbeat event"));
      if (msg.reply) {
        const state = states.get(hb.node)?.path;
        const ack: HeartbeatAck = { v: 1, node: hb.node, at: clock.now(), ...(state ? { state } : {}) };
        msg.respond(JSON.stringify(ack));
      }
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
      await loop;
      await seeded.catch(() => {});
      void statusWatch;
    },
  };
}
