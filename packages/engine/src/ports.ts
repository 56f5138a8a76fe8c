import type { AuditRecord, Command, NodeEvent } from "@fenceline/contracts";
import type { NodeSnapshot } from "./snapshot.js";

/** Per-node snapshots with optimistic concurrency (the KV revision). */
export interface SnapshotStore {
  get(node: string): Promise<{ snapshot: NodeSnapshot; revision: number } | null>;
  /** Writes when the stored revision still equals `revision` (0: must not exist); returns the new revision. */
  put(snapshot: NodeSnapshot, revision: number): Promise<number>;
  list(): Promise<NodeSnapshot[]>;
}

/** Where the fold's outputs go. Publishing the same id twice must store it once. */
export interface OutputSink {
  publishCommands(commands: Command[]): Promise<void>;
  publishAudit(record: AuditRecord): Promise<void>;
}

/** Appends an event to the event log (used by the timer service and operators). */
export interface EventSink {
  publishEvent(event: NodeEvent): Promise<void>;
}
