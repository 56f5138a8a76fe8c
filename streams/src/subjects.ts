import { nodeToken, type Actuator } from "@fenceline/contracts";

/**
 * Every subject Fenceline uses. These are a public interface: documented in the README and
 * kept stable. Node names are written with `nodeToken` (dots become '_').
 */
export const Subjects = {
  /** Agent heartbeats, core NATS (not persisted). */
  heartbeat: (node: string) => `fl.hb.${nodeToken(node)}`,
  heartbeatAll: "fl.hb.*",
  /** The detector's acknowledgement of a heartbeat, core NATS. */
  heartbeatAck: (node: string) => `fl.hback.${nodeToken(node)}`,
  /** Node events, stream FL_EVENTS: the single source of truth. */
  event: (node: string) => `fl.evt.${nodeToken(node)}`,
  eventAll: "fl.evt.>",
  /** Commands, stream FL_COMMANDS (work queue). */
  command: (actuator: Actuator, node: string) => `fl.cmd.${actuator}.${nodeToken(node)}`,
  commandsFor: (actuator: Actuator) => `fl.cmd.${actuator}.*`,
  commandAll: "fl.cmd.>",
  /** One audit record per applied event, stream FL_AUDIT. */
  audit: (node: string) => `fl.audit.${nodeToken(node)}`,
  auditAll: "fl.audit.>",
  /** Inputs that failed validation, stream FL_DLQ. `source` says which reader refused it. */
  deadLetter: (source: string) => `fl.dlq.${source}`,
  deadLetterAll: "fl.dlq.>",
  /** Agent-to-agent questions when the control plane is lost (core NATS fallback; agents also speak HTTP). */
  agentCommand: (node: string) => `fl.agent.${nodeToken(node)}.cmd`,
  /**
   * The node state service, core NATS request/reply: the engine's lifecycle state of a node from
   * FL_NODES (agents ask it to answer their peers' questions). Served by the control plane.
   */
  nodeState: (node: string) => `fl.state.${nodeToken(node)}`,
  nodeStateAll: "fl.state.*",
} as const;

export const Streams = {
  events: "FL_EVENTS",
  commands: "FL_COMMANDS",
  audit: "FL_AUDIT",
  deadLetters: "FL_DLQ",
} as const;

export const Buckets = {
  /** Per-node engine snapshot: state, context, last applied event sequence. */
  nodes: "FL_NODES",
  /** Fleet guard budget and slots, updated by compare-and-set. */
  fleet: "FL_FLEET",
  /** Desired configuration checksums and host group per node. */
  config: "FL_CONFIG",
} as const;

export const Consumers = {
  engine: "engine",
  actuator: (actuator: Actuator) => `actuator-${actuator}`,
} as const;
