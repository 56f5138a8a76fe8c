import type { NodeEvent } from "@fenceline/contracts";
import { fold, type Decider, type FoldResult } from "./fold.js";
import type { Output, OutputSink, SnapshotStore } from "./ports.js";
import type { NodeSnapshot } from "./snapshot.js";

export type ApplyOutcome =
  | { applied: true; result: FoldResult }
  | { applied: false; reason: "already-applied"; lastSeq: number };

/** What `applyBatch` did with a batch of events (in stream order). */
export type BatchOutcome = {
  /** The events applied and saved, in stream order per node. */
  applied: FoldResult[];
  /** Events at or below their node's snapshot sequence (applied before). */
  skipped: number;
  /**
   * The sequence of the first event that was not applied (its outputs, its snapshot or the
   * fold failed), or null when every event was. Every event below it was applied (or
   * skipped); events above it may have been, and are skipped when they come again.
   */
  failedAt: number | null;
  error?: unknown;
};

export type EngineCore = {
  /**
   * Folds one event (with its FL_EVENTS sequence, every earlier event of its node applied); the
   * caller acks it after this resolves. The engine runs `applyBatch` (the partition loop); this
   * is the same fold, publish and save for one event.
   */
  apply(event: NodeEvent, seq: number): Promise<ApplyOutcome>;
  /**
   * Folds a batch of events (in stream order, every earlier event of their nodes applied):
   * each node's events in memory, one after the other; then every output of the batch is
   * published, pipelined in sequence order and awaited together; then each node's last
   * snapshot only is saved (compare-and-set on the revision it was loaded with), covering its
   * events up to its first failed publish. Crash semantics are those of `apply`: output ids
   * derive from sequences and a saved snapshot makes a redelivery a skip. (Unlike `apply`, an
   * audit record may be stored a moment before its commands: a failed command publish fails
   * the batch from that event, whose replay publishes the same ids again.)
   */
  applyBatch(items: ReadonlyArray<{ event: NodeEvent; seq: number }>): Promise<BatchOutcome>;
  /**
   * Loads the snapshots (of the nodes `filter` accepts, default all) into the cache; returns
   * them (for the timer service).
   */
  recover(filter?: (node: string) => boolean): Promise<NodeSnapshot[]>;
  /** Drops the nodes `filter` accepts from the cache (their partition moved elsewhere). */
  forget(filter: (node: string) => boolean): void;
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
  /**
   * Nodes for which a cache miss means "no snapshot" without asking the store: the runtime's
   * owned, recovered partitions. A wrong guess only costs a failed compare-and-set.
   */
  assumeAbsent?: (node: string) => boolean;
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

  /** Nodes dropped from the cache after a failure: the store has the truth, whatever assumeAbsent says. */
  const unsure = new Set<string>();
  const drop = (node: string) => {
    cache.delete(node);
    unsure.add(node);
  };

  async function loadForBatch(node: string) {
    const cached = cache.get(node);
    if (cached) return cached;
    if (!unsure.has(node) && options.assumeAbsent?.(node)) return null;
    const stored = await load(node);
    unsure.delete(node);
    return stored;
  }

  /** Publishes outputs; throws the first failure. */
  async function publishAll(list: Output[]) {
    const results = await outputs.publish(list);
    for (const r of results) if (r !== null) throw r;
  }

  /** Commands, then (once they are stored) the audit record. */
  async function publish(result: FoldResult) {
    if (result.commands.length > 0) await publishAll(result.commands.map((command) => ({ type: "command", command })));
    await publishAll([{ type: "audit", record: result.audit }]);
  }

  return {
    async apply(event, seq) {
      const prior = await load(event.node);
      if (prior && seq <= prior.snapshot.lastSeq) {
        return { applied: false, reason: "already-applied", lastSeq: prior.snapshot.lastSeq };
      }
      const result = fold(decider, prior?.snapshot ?? null, event, seq);
      await publish(result);
      try {
        const revision = await snapshots.put(result.snapshot, prior?.revision ?? 0);
        cache.set(event.node, { snapshot: result.snapshot, revision });
      } catch (err) {
        // Someone else wrote this node (another instance): forget the cache so the
        // redelivery reloads the newer snapshot.
        drop(event.node);
        throw err;
      }
      options.onApplied?.(result);
      return { applied: true, result };
    },

    async applyBatch(items) {
      const byNode = new Map<string, Array<{ event: NodeEvent; seq: number }>>();
      for (const item of items) {
        const list = byNode.get(item.event.node);
        if (list) list.push(item);
        else byNode.set(item.event.node, [item]);
      }
      let failedAt: number | null = null;
      let error: unknown;
      let skipped = 0;
      const fail = (seq: number, err: unknown) => {
        if (failedAt === null || seq < failedAt) {
          failedAt = seq;
          error = err;
        }
      };

      // 1. Load what is not cached (concurrently), then fold each node's events in memory. Nodes
      //    already cached (or known to have no snapshot) take no promise.
      type Loaded = { node: string; list: Array<{ event: NodeEvent; seq: number }>; prior: { snapshot: NodeSnapshot; revision: number } | null } | null;
      const nodes: Loaded[] = [];
      const loading: Array<Promise<void>> = [];
      for (const [node, list] of byNode) {
        const cached = cache.get(node);
        if (cached) nodes.push({ node, list, prior: cached });
        else if (!unsure.has(node) && options.assumeAbsent?.(node)) nodes.push({ node, list, prior: null });
        else {
          const at = nodes.push(null) - 1;
          loading.push(
            loadForBatch(node).then(
              (prior) => void (nodes[at] = { node, list, prior }),
              (err: unknown) => fail(list[0]!.seq, err),
            ),
          );
        }
      }
      if (loading.length > 0) await Promise.all(loading);
      const folded: Array<{ node: string; prior: { snapshot: NodeSnapshot; revision: number } | null; results: FoldResult[] }> = [];
      for (const entry of nodes) {
        if (!entry) continue;
        const results: FoldResult[] = [];
        let state = entry.prior?.snapshot ?? null;
        for (const { event, seq } of entry.list) {
          if (state && seq <= state.lastSeq) {
            skipped += 1;
            continue;
          }
          try {
            const result = fold(decider, state, event, seq);
            results.push(result);
            state = result.snapshot;
          } catch (err) {
            fail(seq, err);
            break;
          }
        }
        if (results.length > 0) folded.push({ node: entry.node, prior: entry.prior, results });
      }

      // 2. Every output of the batch, pipelined in sequence order on the connection (so the
      //    streams store them in that order), awaited together.
      const all = folded.flatMap((f) => f.results).sort((a, b) => a.audit.seq - b.audit.seq);
      const list: Output[] = [];
      /** The sequence of the event each output of `list` comes from. */
      const seqOf: number[] = [];
      for (const r of all) {
        for (const command of r.commands) {
          list.push({ type: "command", command });
          seqOf.push(r.audit.seq);
        }
        list.push({ type: "audit", record: r.audit });
        seqOf.push(r.audit.seq);
      }
      const failedSeqs = new Map<number, unknown>();
      let published: unknown[];
      try {
        published = list.length > 0 ? await outputs.publish(list) : [];
      } catch (err) {
        published = list.map(() => err);
      }
      published.forEach((err, i) => {
        if (err !== null && !failedSeqs.has(seqOf[i]!)) failedSeqs.set(seqOf[i]!, err);
      });

      // 3. One snapshot per node: the last one whose outputs (and all before it) are out.
      const saved = await Promise.all(
        folded.map(async ({ node, prior, results }) => {
          const firstBad = results.findIndex((r) => failedSeqs.has(r.audit.seq));
          if (firstBad >= 0) fail(results[firstBad]!.audit.seq, failedSeqs.get(results[firstBad]!.audit.seq));
          const done = firstBad >= 0 ? results.slice(0, firstBad) : results;
          const last = done.at(-1);
          if (!last) return [];
          try {
            const revision = await snapshots.put(last.snapshot, prior?.revision ?? 0);
            cache.set(node, { snapshot: last.snapshot, revision });
            return done;
          } catch (err) {
            // Someone else wrote this node (another instance), or the store failed: reload
            // it next time.
            drop(node);
            fail(done[0]!.audit.seq, err);
            return [];
          }
        }),
      );
      const applied = saved.flat().sort((a, b) => a.audit.seq - b.audit.seq);
      for (const result of applied) options.onApplied?.(result);
      return { applied, skipped, failedAt, ...(failedAt !== null ? { error } : {}) };
    },

    async recover(filter) {
      const accept = filter ?? (() => true);
      const entries = snapshots.entries
        ? (await snapshots.entries()).filter((e) => accept(e.snapshot.node))
        : await Promise.all(
            (await snapshots.list())
              .filter((s) => accept(s.node))
              .map(async (s) => (await snapshots.get(s.node)) ?? { snapshot: s, revision: -1 }),
          );
      const out: NodeSnapshot[] = [];
      for (const entry of entries) {
        if (entry.revision < 0) continue;
        cache.set(entry.snapshot.node, entry);
        out.push(entry.snapshot);
      }
      return out;
    },
    forget(filter) {
      for (const node of [...cache.keys()]) if (filter(node)) cache.delete(node);
    },
    snapshot: (node) => cache.get(node)?.snapshot,
    snapshots: () => [...cache.values()].map((c) => c.snapshot),
  };
}
