/**
 * The agent's ports: everything it needs from the world besides the Clock and Watchdog ports of
 * contracts. Real adapters: NATS (nats-transport.ts), HTTP (http-peers.ts), files
 * (self-fence-store.ts). The simulator plugs in the memory ones.
 */
import type { CommandOf, Heartbeat, HeartbeatAck, MembershipView } from "@fenceline/contracts";
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
  /**
   * Sends the last heartbeat of a clean stop (its contract withdrawn) and resolves true once the
   * control plane answered that the withdrawal is stored; false when it did not within
   * `timeoutMs` (the agent then leaves its watchdog armed). Optional: without it, never true.
   */
  withdraw?(heartbeat: Heartbeat, timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** A peer to ask: its node name and, when known, the URL its agent answers at. */
export interface PeerAddress {
  node: string;
  url?: string;
}

export type PeerQuestionHandler = (question: PeerQuestion) => Promise<PeerAnswer>;

/** Agent-to-agent questions, used when the control plane is lost. */
export interface PeerTransport {
  /** Resolves undefined when the peer does not answer within `timeoutMs` (never rejects). */
  ask(peer: PeerAddress, question: PeerQuestion, timeoutMs: number): Promise<PeerAnswer | undefined>;
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

/**
 * Keeps the last membership view across agent restarts and reboots (membership.json): a cut-off
 * agent decides with it. `save` must be durable before it resolves: the agent reports a view in
 * its heartbeats only once it is stored, so the engine never believes it holds a view it could
 * lose.
 */
export interface MembershipViewStore {
  /** undefined when none was ever stored; rejects when what is stored cannot be read. */
  load(): Promise<MembershipView | undefined>;
  save(view: MembershipView): Promise<void>;
}
