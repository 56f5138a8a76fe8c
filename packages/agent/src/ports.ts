/**
 * The agent's ports: everything it needs from the world besides the Clock and Watchdog ports of
 * contracts. Real adapters: NATS (nats-transport.ts), HTTP (http-peers.ts), files
 * (self-fence-store.ts). The simulator plugs in the memory ones.
 */
import type { CommandOf, Heartbeat, HeartbeatAck } from "@fenceline/contracts";
import type { PeerAnswer, PeerQuestion } from "./peer-protocol.js";

/** The engine's positive fencing request: "stop feeding your watchdog". */
export type WatchdogStopCommand = CommandOf<"watchdog.stop">;

export interface CommandReply {
  ok: boolean;
  reason?: string;
}

export type CommandHandler = (command: WatchdogStopCommand) => Promise<CommandReply>;

/** The agent's link to the control plane. */
export interface AgentTransport {
  /** Fire and forget: a heartbeat that cannot be sent is simply missed. */
  sendHeartbeat(heartbeat: Heartbeat): void;
  /** Acks are validated by the transport; each one proves the control plane hears this node. */
  onAck(callback: (ack: HeartbeatAck) => void): void;
  /** Commands are validated by the transport; the reply goes back to the requester. */
  onCommand(handler: CommandHandler): void;
  /**
   * The engine's lifecycle state of a node ("healthy", "fencing", ...), undefined when unknown.
   * Optional: without it this agent answers its peers with verdict "unknown". Rejects when the
   * control plane cannot be asked.
   */
  lookupNodeState?(node: string, timeoutMs: number): Promise<string | undefined>;
  close(): Promise<void>;
}

export type PeerQuestionHandler = (question: PeerQuestion) => Promise<PeerAnswer>;

/** Agent-to-agent questions, used when the control plane is lost. */
export interface PeerTransport {
  /** Resolves undefined when the peer does not answer within `timeoutMs` (never rejects). */
  ask(peer: string, question: PeerQuestion, timeoutMs: number): Promise<PeerAnswer | undefined>;
  serve(handler: PeerQuestionHandler): void;
  close(): Promise<void>;
}

/** `{ at, reason, bootId }`: when and why the node stopped feeding its watchdog. */
export type SelfFenceRecord = NonNullable<Heartbeat["selfFenced"]>;

/**
 * Keeps the self-fence record across the reset, so the next boot's heartbeats can report it,
 * and so an agent restarted within the fenced boot stays fenced.
 */
export interface SelfFenceStore {
  load(): Promise<SelfFenceRecord | undefined>;
  /** Must be durable before it resolves: a watchdog reset does not flush the page cache. */
  save(record: SelfFenceRecord): Promise<void>;
  clear(): Promise<void>;
}
