import { z } from "zod";
import { AgentContract } from "./heartbeat.js";
import { NodeName } from "./names.js";
import { CommandResultData } from "./commands.js";

/** Version of the event envelope. Bump on a breaking change and keep parsing the old one. */
export const EVENT_VERSION = 1;

const Checksums = z.record(z.string().min(1).max(128), z.string().min(1).max(256));
const BootId = z.string().min(1).max(128);
const Millis = z.number().int().nonnegative();
const PeerUrl = z.string().min(1).max(512);

const envelope = {
  v: z.literal(EVENT_VERSION),
  /** Unique id, used as the `Nats-Msg-Id`: a retried publish is stored once. */
  id: z.string().min(1).max(256),
  node: NodeName,
  /** When the event happened, in ms since the epoch, by the clock of its source. */
  at: Millis,
  /** Who produced it: "heartbeat-detector", "timer", "actuator:cluster", "operator:alice"... */
  source: z.string().min(1).max(128),
};

function event<T extends string, D extends z.ZodRawShape>(type: T, data: D) {
  return z.object({ ...envelope, type: z.literal(type), data: z.object(data).strict() }).strict();
}

/** A detector saw this node for the first time (or for the first time since it restarted). */
export const NodeJoined = event("node.joined", {
  bootId: BootId,
  incarnation: z.number().int().nonnegative(),
  hostGroup: z.string().max(128).optional(),
  controlPlane: z.boolean().optional(),
  checksums: Checksums.optional(),
  /** The agent's fencing contract (absent: an agent older than the contract). */
  contract: AgentContract.optional(),
  peerUrl: PeerUrl.optional(),
});

/** No heartbeat arrived for the detection timeout. */
export const HeartbeatMissed = event("heartbeat.missed", {
  lastSeenAt: Millis,
  bootId: BootId,
});

/** Heartbeats arrive again after a `heartbeat.missed`. */
export const HeartbeatResumed = event("heartbeat.resumed", {
  bootId: BootId,
  incarnation: z.number().int().nonnegative(),
  checksums: Checksums.optional(),
  /** Set when the agent fenced itself (stopped feeding its watchdog) before this boot. */
  selfFenced: z.object({ at: Millis, reason: z.string().max(256), bootId: BootId }).optional(),
  contract: AgentContract.optional(),
  peerUrl: PeerUrl.optional(),
});

/** The node's boot id differs from the last one seen: it rebooted. */
export const BootChanged = event("boot.changed", {
  previousBootId: BootId,
  bootId: BootId,
});

/**
 * Another unhealthy/healthy signal about the node (a Kubernetes node condition, serf membership).
 * `signal` names it (for example "condition:Ready" or "serf"); `since` is when it started, so a
 * flip between two unhealthy statuses does not restart the clock.
 */
export const SignalUnhealthy = event("signal.unhealthy", {
  signal: z.string().min(1).max(128),
  since: Millis,
  detail: z.string().max(512).optional(),
});
export const SignalHealthy = event("signal.healthy", {
  signal: z.string().min(1).max(128),
});

/** A deadline the machine asked for has passed. `due` must match the pending deadline. */
export const TimerFired = event("timer.fired", {
  timer: z.string().min(1).max(64),
  due: Millis,
});

/** An actuator (or agent) finished a command: one data shape per command kind (commands.ts). */
export const CommandResult = z.object({ ...envelope, type: z.literal("command.result"), data: CommandResultData }).strict();

export const OperatorPause = event("operator.pause", { reason: z.string().min(1).max(512) });
export const OperatorResume = event("operator.resume", { reason: z.string().max(512).optional() });
/** Clears the operator-required state after a human fixed the node. */
export const OperatorReset = event("operator.reset", { reason: z.string().min(1).max(512) });

/** The desired configuration checksums (and host group) of the node. */
export const ConfigDesired = event("config.desired", {
  checksums: Checksums,
  hostGroup: z.string().max(128).optional(),
});

/** The agent reported its configuration checksums (on start, and when they change). */
export const ConfigReported = event("config.reported", {
  bootId: BootId,
  checksums: Checksums,
});

/**
 * The agent's fencing contract (or its peer address) changed while it heartbeats: a new view
 * learned, another timing after a restart, or withdrawn by a cleanly stopping agent.
 */
export const ContractReported = event("contract.reported", {
  bootId: BootId,
  contract: AgentContract,
  peerUrl: PeerUrl.optional(),
});

/**
 * The node leaves the fleet: forgotten by an operator (`fenceline forget`), or its Node deleted
 * from Kubernetes. It frees its remediation slot and leaves the membership; its agent heard
 * again brings it back as a new member.
 */
export const NodeForgotten = event("node.forgotten", { reason: z.string().min(1).max(512) });

export const NodeEvent = z.discriminatedUnion("type", [
  NodeJoined,
  HeartbeatMissed,
  HeartbeatResumed,
  BootChanged,
  SignalUnhealthy,
  SignalHealthy,
  TimerFired,
  CommandResult,
  OperatorPause,
  OperatorResume,
  OperatorReset,
  ConfigDesired,
  ConfigReported,
  ContractReported,
  NodeForgotten,
]);
export type NodeEvent = z.infer<typeof NodeEvent>;
export type NodeEventType = NodeEvent["type"];
export type NodeEventOf<T extends NodeEventType> = Extract<NodeEvent, { type: T }>;
export const NODE_EVENT_TYPES = NodeEvent.options.map((o) => o.shape.type.value) as NodeEventType[];

/** Builds an event with the envelope filled in. */
export function createEvent<T extends NodeEventType>(
  type: T,
  fields: { id: string; node: string; at: number; source: string; data: NodeEventOf<T>["data"] },
): NodeEventOf<T> {
  // In the schema's key order, so that a consumer's validation can take the parsed event as it is
  // (fast-parse.ts) instead of copying it into that order.
  const { id, node, at, source, data } = fields;
  return { v: EVENT_VERSION, id, node, at, source, type, data } as unknown as NodeEventOf<T>;
}
