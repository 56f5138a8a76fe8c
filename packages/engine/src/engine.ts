import type { NodeEvent } from "@fenceline/contracts";
import { fold, type Decider, type FoldResult } from "./fold.js";
import type { EventLog, OutputSink, SnapshotStore } from "./ports.js";
import type { NodeSnapshot } from "./snapshot.js";

export type ApplyOutcome =
  | { applied: true; result: FoldResult }
  | { applied: false; reason: "already-applied"; lastSeq: number }
  /** An earlier event of the node is still to be applied: redeliver this one later. */
  | { applied: false; reason: "out-of-order"; waitingFor: number };

export type EngineCore = {
  /**
   * Folds one event (with its FL_EVENTS sequence); the caller acks it after this resolves,
   * except for "out-of-order", which it must have redelivered later (nak with a delay).
   */
  apply(event: NodeEvent, seq: number): Promise<ApplyOutcome>;
  /** Loads every snapshot into the cache; returns them (for the timer service). */
  recover(): Promise<NodeSnapshot[]>;
  snapshot(node: string): NodeSnapshot | undefined;
  snapshots(): NodeSnapshot[];
};

/**
 * The engine's core loop step, independent of NATS: fold, publish outputs, then save the
 * snapshot. A crash anywhere re-applies the event on redelivery with the same output ids.
 */
export function createEngineCore(options: {
  decider: Decider;
  snapshots: SnapshotStore;
  outputs: OutputSink;
  /** When given, an event is applied only once every earlier event of its node was (see EventLog). */
  events?: EventLog;
  onApplied?: (result: FoldResult) => void;
}): EngineCore {
  const { decider, snapshots, outputs } = options;
  const cache = new Map<string, { snapshot: NodeSnapshot; revision: number }>();

  async function load(node: string) {
    const cached = cache.get(node);
    if (cached) return cached;
    const stored = await snapshots.get(node);
    if (stored) cache.set(node, stored);
    return stored;
  }

  return {
    async apply(event, seq) {
      const prior = await load(event.node);
      if (prior && seq <= prior.snapshot.lastSeq) {
        return { applied: false, reason: "already-applied", lastSeq: prior.snapshot.lastSeq };
      }
      const waitingFor = (await options.events?.firstPending(event.node, prior?.snapshot.lastSeq ?? 0, seq)) ?? null;
      if (waitingFor !== null) {
        // Reload on the next try, in case another instance applied the earlier event meanwhile.
        cache.delete(event.node);
        return { applied: false, reason: "out-of-order", waitingFor };
      }
      const result = fold(decider, prior?.snapshot ?? null, event, seq);
      if (result.commands.length > 0) await outputs.publishCommands(result.commands);
      await outputs.publishAudit(result.audit);
      try {
        const revision = await snapshots.put(result.snapshot, prior?.revision ?? 0);
        cache.set(event.node, { snapshot: result.snapshot, revision });
      } catch (err) {
        // Someone else wrote this node (another instance): forget the cache so the
        // redelivery reloads the newer snapshot.
        cache.delete(event.node);
        throw err;
      }
      options.onApplied?.(result);
      return { applied: true, result };
    },
    async recover() {
      const all = await snapshots.list();
      for (const snapshot of all) {
        const stored = await snapshots.get(snapshot.node);
        if (stored) cache.set(snapshot.node, stored);
      }
      return all;
    },
    snapshot: (node) => cache.get(node)?.snapshot,
    snapshots: () => [...cache.values()].map((c) => c.snapshot),
  };
}
