import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { z } from "zod";
import { Command, HeartbeatAck, MAX_ACK_BYTES, NodeName, parseMessage, type Clock, type DeadLetter } from "@fenceline/contracts";
import { publishDeadLetter } from "@fenceline/bus";
import { Subjects } from "@fenceline/streams";
import type { Logger } from "pino";
import type { AgentTransport, CommandHandler, CommandReply } from "./ports.js";

export interface NatsAgentTransportOptions {
  /** Owned by the caller: close() leaves it open. */
  nc: NatsConnection;
  node: string;
  log: Logger;
  clock?: Clock;
}

const DLQ_SOURCE = "agent";

/**
 * The node state service's reply on `Subjects.nodeState(node)` (served by the control plane,
 * see @fenceline/detectors node-state-service.ts): the engine's state of the node, "unknown
 * node", or an error (the service could not read FL_NODES).
 */
const NodeStateReply = z.union([
  z.object({
    v: z.literal(1),
    node: NodeName,
    at: z.number(),
    known: z.literal(true),
    state: z.string().min(1).max(256),
    epoch: z.number().int().nonnegative(),
    since: z.number(),
  }),
  z.object({ v: z.literal(1), node: NodeName, at: z.number(), known: z.literal(false) }),
  z.object({ v: z.literal(1), node: z.string(), at: z.number(), error: z.string().max(2048) }),
]);

/**
 * Asks the node state service for the engine's state of `node`: its state path, or undefined
 * when the engine does not know the node. Rejects (timeout, no responders, closed connection,
 * an invalid or error reply) when the control plane cannot be asked.
 */
export async function requestNodeState(nc: NatsConnection, node: string, timeoutMs: number): Promise<string | undefined> {
  const reply = await nc.request(Subjects.nodeState(node), "", { timeout: timeoutMs });
  const parsed = parseMessage(NodeStateReply, reply.data);
  if (!parsed.ok) throw new Error(`invalid node state reply: ${parsed.error}`);
  const answer = parsed.value;
  if ("error" in answer) throw new Error(`node state service: ${answer.error}`);
  if (answer.node !== node) throw new Error(`node state reply about ${answer.node}, asked about ${node}`);
  return answer.known ? answer.state : undefined;
}

/**
 * The agent's control-plane link over core NATS:
 * - heartbeats are published on `Subjects.heartbeat(node)` with reply subject
 *   `Subjects.heartbeatAck(node)`, where the heartbeat detector answers with a HeartbeatAck;
 * - commands arrive as requests on `Subjects.agentCommand(node)` and get a JSON CommandReply;
 * - `lookupNodeState` asks the control plane's node state service (`Subjects.nodeState(node)`),
 *   so this agent can tell a peer what the engine thinks of it.
 * Invalid acks and commands are dead-lettered (source "agent") and never reach the agent.
 */
export function createNatsAgentTransport(options: NatsAgentTransportOptions): AgentTransport {
  const { nc, node } = options;
  const log = options.log.child({ component: "nats-transport" });
  const now = () => options.clock?.now() ?? Date.now();
  const ackListeners: Array<(ack: HeartbeatAck) => void> = [];
  let commandHandler: CommandHandler | undefined;

  const deadLetter = (msg: Msg, reason: DeadLetter["reason"], error: string) => {
    publishDeadLetter(nc, DLQ_SOURCE, msg.subject, msg.data, reason, error, { log, at: now() }).catch((err: unknown) =>
      log.warn({ err, subject: msg.subject, reason, error }, "invalid message, and the dead letter could not be published"),
    );
  };

  const onAckMessage = (msg: Msg) => {
    const parsed = parseMessage(HeartbeatAck, msg.data, { maxBytes: MAX_ACK_BYTES });
    if (!parsed.ok) return deadLetter(msg, parsed.reason, parsed.error);
    for (const listener of ackListeners) listener(parsed.value);
  };

  const onCommandMessage = async (msg: Msg) => {
    const respond = (reply: CommandReply) => {
      if (!msg.respond(JSON.stringify(reply))) log.warn({ reply }, "command had no reply subject");
    };
    const parsed = parseMessage(Command, msg.data);
    if (!parsed.ok) {
      deadLetter(msg, parsed.reason, parsed.error);
      return respond({ ok: false, reason: `invalid command: ${parsed.error}` });
    }
    const command = parsed.value;
    // Well-formed but not for this agent: refused, and recorded like any input that does not belong.
    if (command.node !== node || command.kind !== "watchdog.stop") {
      const reason =
        command.node !== node
          ? `${command.kind} for ${command.node} sent to the agent of ${node}`
          : `the agent does not carry out ${command.kind}`;
      deadLetter(msg, "forbidden", reason);
      return respond({ ok: false, reason });
    }
    if (!commandHandler) return respond({ ok: false, reason: "agent not ready" });
    try {
      respond(await commandHandler(command));
    } catch (err) {
      log.error({ err, commandId: command.id }, "command handler failed");
      respond({ ok: false, reason: `agent error: ${(err as Error).message}` });
    }
  };

  const subscriptions: Subscription[] = [
    nc.subscribe(Subjects.heartbeatAck(node), {
      callback: (err, msg) => (err ? log.warn({ err }, "ack subscription error") : onAckMessage(msg)),
    }),
    nc.subscribe(Subjects.agentCommand(node), {
      callback: (err, msg) => (err ? log.warn({ err }, "command subscription error") : void onCommandMessage(msg)),
    }),
  ];

  return {
    sendHeartbeat: (heartbeat) => {
      nc.publish(Subjects.heartbeat(node), JSON.stringify(heartbeat), { reply: Subjects.heartbeatAck(node) });
    },
    withdraw: async (heartbeat, timeoutMs) => {
      const reply = await nc.request(Subjects.heartbeat(node), JSON.stringify(heartbeat), { timeout: timeoutMs });
      const parsed = parseMessage(HeartbeatAck, reply.data, { maxBytes: MAX_ACK_BYTES });
      return parsed.ok && parsed.value.node === node && parsed.value.withdrawn === true;
    },
    lookupNodeState: (about, timeoutMs) => requestNodeState(nc, about, timeoutMs),
    onAck: (callback) => void ackListeners.push(callback),
    onCommand: (handler) => {
      commandHandler = handler;
    },
    close: async () => {
      for (const sub of subscriptions) sub.unsubscribe();
    },
  };
}
