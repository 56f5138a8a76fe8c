import { Kvm } from "@nats-io/kv";
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import { NodeName, nodeFromToken, parseSnapshotHead, systemClock, type Clock } from "@fenceline/contracts";
import { publishDeadLetter, type Logger } from "@fenceline/bus";
import { Buckets, Subjects } from "@fenceline/streams";

/**
 * The reply on `fl.state.<node>` (JSON). `known: false`: the engine has no snapshot of the node.
 * `error`: the service could not read FL_NODES; the asker must treat it as "cannot ask".
 */
export type NodeStateReply =
  | { v: 1; node: string; at: number; known: true; state: string; epoch: number; since: number }
  | { v: 1; node: string; at: number; known: false }
  | { v: 1; node: string; at: number; error: string };

/** Every control-plane instance joins this queue group: one of them answers each request. */
export const NODE_STATE_QUEUE = "fl-node-state";

const DLQ_SOURCE = "node-state";

/**
 * The node state service: answers `fl.state.<node>` requests (core NATS, any payload) with the
 * node's lifecycle state as the engine last recorded it in FL_NODES. Agents use it to answer
 * their peers ("what does the control plane think of me?") when a peer lost the control plane.
 * Reads the KV entry on every request, so the answer is never older than the engine's snapshot.
 */
export async function runNodeStateService(options: { nc: NatsConnection; log: Logger; clock?: Clock }) {
  const { nc } = options;
  const clock = options.clock ?? systemClock;
  const log = options.log.child({ component: "node-state-service" });
  const kv = await new Kvm(nc).open(Buckets.nodes);
  let answered = 0;

  const answer = async (msg: Msg): Promise<NodeStateReply> => {
    const token = msg.subject.split(".").slice(2).join(".");
    const node = nodeFromToken(token);
    const parsed = NodeName.safeParse(node);
    if (!parsed.success) {
      const error = `"${node.slice(0, 64)}" is not a node name: ${parsed.error.issues[0]?.message ?? "invalid"}`;
      publishDeadLetter(nc, DLQ_SOURCE, msg.subject, msg.data, "schema", error, { log, at: clock.now() }).catch(() => {});
      return { v: 1, node: node.slice(0, 253), at: clock.now(), error };
    }
    try {
      const entry = await kv.get(node);
      if (!entry || entry.operation !== "PUT") return { v: 1, node, at: clock.now(), known: false };
      const snapshot = parseSnapshotHead(entry.value);
      if (!snapshot) return { v: 1, node, at: clock.now(), error: "the stored snapshot is not valid" };
      return {
        v: 1,
        node,
        at: clock.now(),
        known: true,
        state: snapshot.path,
        epoch: snapshot.context.epoch,
        since: snapshot.context.since ?? 0,
      };
    } catch (err) {
      log.warn({ err, node }, "cannot read a node snapshot");
      return { v: 1, node, at: clock.now(), error: `cannot read FL_NODES: ${(err as Error).message}` };
    }
  };

  const sub = nc.subscribe(Subjects.nodeStateAll, {
    queue: NODE_STATE_QUEUE,
    callback: (err, msg) => {
      if (err) return void log.warn({ err }, "node state subscription error");
      if (!msg.reply) return;
      void answer(msg).then((reply) => {
        answered++;
        msg.respond(JSON.stringify(reply));
      });
    },
  });
  log.info({ subject: Subjects.nodeStateAll, queue: NODE_STATE_QUEUE }, "answering node state requests");

  return {
    answered: () => answered,
    async stop() {
      sub.unsubscribe();
    },
  };
}
export type NodeStateService = Awaited<ReturnType<typeof runNodeStateService>>;
