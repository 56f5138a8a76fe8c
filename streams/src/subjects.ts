import { nodeFromToken, nodeToken, type Actuator } from "@fenceline/contracts";
import { checkPartitions, eventPartitions, partitionOf } from "./partitions.js";

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
  /**
   * Where a node event is published (stream FL_EVENTS, the single source of truth). The stream
   * stores it as `storedEvent(node)`: its subject transform inserts the node's partition.
   */
  event: (node: string) => `fl.evt.${nodeToken(node)}`,
  /** What FL_EVENTS listens on: one token after `fl.evt`, the node. */
  eventPublished: "fl.evt.*",
  /** The subject FL_EVENTS stores a node's event under: `fl.evt.<partition>.<node>` (see partitions.ts). */
  storedEvent: (node: string, partitions: number = eventPartitions()) => `fl.evt.${partitionOf(node, partitions)}.${nodeToken(node)}`,
  /** Every stored event of one node, whatever the partition count: a filter for reading FL_EVENTS. */
  eventsOf: (node: string) => `fl.evt.*.${nodeToken(node)}`,
  /** Every event of one partition: the filter of the `engine-<p>` consumer. */
  eventPartition: (partition: number) => `fl.evt.${partition}.*`,
  /** Every stored event (read filters and permissions). */
  eventAll: "fl.evt.>",
  /**
   * Subjects under `fl.evt` with more than one token after it: no stream stores them. The
   * engine answers and dead-letters what is published there (the per-partition subjects that
   * publishers wrote before the server partitioned, `fl.evt.<p>.<node>`, among them).
   */
  eventMisplaced: "fl.evt.*.>",
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

/**
 * The partition and node a stored event subject names (`fl.evt.<p>.<node>`), or null when the
 * subject does not have that shape. The node is always the last token.
 */
export function parseEventSubject(subject: string): { partition: number; node: string; token: string } | null {
  // Read once per event by the engine: no split, no regex.
  if (!subject.startsWith("fl.evt.")) return null;
  const dot = subject.indexOf(".", 7);
  if (dot < 0 || subject.indexOf(".", dot + 1) >= 0) return null;
  const digits = subject.slice(7, dot);
  const partition = Number(digits);
  if (!Number.isInteger(partition) || partition < 0 || String(partition) !== digits) return null;
  const token = subject.slice(dot + 1);
  if (token === "") return null;
  return { partition, node: nodeFromToken(token), token };
}

/**
 * FL_EVENTS's subject transform: `fl.evt.<node>` is stored as `fl.evt.<partition>.<node>`, the
 * partition computed by the server (`partition(n, 1)`: FNV-1a of the node token, as
 * `partitionOf`). Needs nats-server 2.10 or newer.
 */
export function eventPartitionTransform(partitions: number): { src: string; dest: string } {
  return { src: Subjects.eventPublished, dest: `fl.evt.{{partition(${checkPartitions(partitions)},1)}}.{{wildcard(1)}}` };
}

/** The partition count an FL_EVENTS subject transform names, or null when it has none of ours. */
export function partitionsOfTransform(transform: { src?: string; dest?: string } | undefined | null): number | null {
  const match = /^fl\.evt\.\{\{\s*partition\((\d+),\s*1\)\s*\}\}\.\{\{\s*wildcard\(1\)\s*\}\}$/i.exec(transform?.dest ?? "");
  return match ? Number(match[1]) : null;
}

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
  /**
   * Engine partition leases (`p<k>`: owner and expiry, compare-and-set), live instances
   * (`i.<id>`) and the partition count (`partitions`).
   */
  leases: "FL_LEASES",
  /**
   * The fleet's membership view (key `view`: version, witness, members and their peer URLs),
   * written by the membership keeper with compare-and-set; its history holds the last views.
   */
  members: "FL_MEMBERS",
} as const;

export const Consumers = {
  /** The engine's durable consumer of one partition (filter `fl.evt.<p>.*`, ack policy "all"). */
  enginePartition: (partition: number) => `engine-${partition}`,
  actuator: (actuator: Actuator) => `actuator-${actuator}`,
} as const;

/**
 * The inbox prefix of a node agent's NATS connection: replies to its requests arrive on
 * `_INBOX.agent.<node>.>`, the only inboxes its NATS user may subscribe to (docs/security.md).
 */
export function agentInboxPrefix(node: string): string {
  return `_INBOX.agent.${nodeToken(node)}`;
}
