import type { AuditRecord, Command, NodeEvent } from "@fenceline/contracts";
import type { NodeSnapshot } from "./snapshot.js";

/** Per-node snapshots with optimistic concurrency (the KV revision). */
export interface SnapshotStore {
  get(node: string): Promise<{ snapshot: NodeSnapshot; revision: number } | null>;
  /** Writes when the stored revision still equals `revision` (0: must not exist); returns the new revision. */
  put(snapshot: NodeSnapshot, revision: number): Promise<number>;
  list(): Promise<NodeSnapshot[]>;
  /** Every snapshot with its revision, in one pass (optional; recovery uses list + get without it). */
  entries?(): Promise<Array<{ snapshot: NodeSnapshot; revision: number }>>;
}

/** One output of a fold: a command, or the audit record of the transition. */
export type Output = { type: "command"; command: Command } | { type: "audit"; record: AuditRecord };

/**
 * Where the fold's outputs go. Publishing the same id twice must store it once. `Encoded` is the
 * sink's own final form of an output (none by default).
 */
export interface OutputSink<Encoded = never> {
  /**
   * An output in the final form `publish` sends (JetStream: subject, id and payload bytes). When
   * a sink has it, the engine encodes each output as soon as it is decided and holds only that
   * until the batch is acknowledged, so the records themselves die young (docs/scale.md).
   */
  encode?(output: Output): Encoded;
  /**
   * Sends every output, in order, before waiting for any to be stored; resolves with one entry
   * per output: null once stored, else why not. Need not reject.
   */
  publish(outputs: ReadonlyArray<Output | Encoded>): Promise<Array<unknown>>;
}

/** Appends an event to the event log (used by the timer service and operators). */
export interface EventSink {
  publishEvent(event: NodeEvent): Promise<void>;
}
