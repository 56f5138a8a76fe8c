import type { NodeEvent } from "@fenceline/contracts";
import { fold, type Decider, type FoldResult } from "./fold.js";
import type { Output, OutputSink, SnapshotStore } from "./ports.js";
import type { NodeSnapshot } from "./snapshot.js";

export type ApplyOutcome = { applied: true; result: FoldResult } | { applied: false; reason: "already-applied"; lastSeq: number };

/** An event a batch applied and saved, as the batch's caller sees it. */
export type AppliedEvent = {
  seq: number;
  node: string;
  /** The node's deadlines after the event (what the timer service tracks). */
  timers: Readonly<Record<string, number>>;
  /** The fold itself, when the core kept it (`keepResult`). */
  result?: FoldResult;
};

/** What `applyBatch` did with a batch of events (in stream order). */
export type BatchOutcome = {
  /** The events applied and saved, in stream order. */
  applied: AppliedEvent[];
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
   * Folds a batch of events (in stream order, every earlier event of their nodes applied): in
   * memory, in stream order, each output encoded by the sink as soon as it is decided (when the
   * sink can); then every output of the batch is published, pipelined in sequence order and
   * awaited together; then each node's last snapshot only is saved (compare-and-set on the
   * revision it was loaded with). A node with an output that was not stored saves nothing: the
   * batch fails from the node's first event in it, whose replay publishes the same ids again.
   * Crash semantics are those of `apply`: output ids derive from sequences and a saved snapshot
   * makes a redelivery a skip. (Unlike `apply`, an audit record may be stored a moment before
   * its commands.)
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
  /** Any sink: its encoded form (if any) is opaque here. */
  outputs: OutputSink<unknown>;
  /**
   * Nodes for which a cache miss means "no snapshot" without asking the store: the runtime's
   * owned, recovered partitions. A wrong guess only costs a failed compare-and-set.
   */
  assumeAbsent?: (node: string) => boolean;
  /** Called with every kept fold (`keepResult`) of a saved batch, in stream order, and every `apply`. */
  onApplied?: (result: FoldResult) => void;
  /**
   * Which folds a batch keeps until it is saved, for `onApplied` and `applied[].result`
   * (default: all). A kept fold (snapshot, context, audit record, commands) lives until the
   * batch's acknowledgements are back, so it survives young-generation collections and is
   * copied; the others are garbage as soon as their outputs are encoded.
   */
  keepResult?: (result: FoldResult) => boolean;
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
      let failedAt: number | null = null;
      let error: unknown;
      let skipped = 0;
      const fail = (seq: number, err: unknown) => {
        if (failedAt === null || seq < failedAt) {
          failedAt = seq;
          error = err;
        }
      };

      // 1. Each node's snapshot: from the cache, known absent, or loaded (concurrently).
      type NodeWork = {
        node: string;
        prior: { snapshot: NodeSnapshot; revision: number } | null;
        state: NodeSnapshot | null;
        stopped: boolean;
        applied: AppliedEvent[];
      };
      const work = new Map<string, NodeWork>();
      const loading: Array<Promise<void>> = [];
      for (const { event, seq } of items) {
        const node = event.node;
        if (work.has(node)) continue;
        const w: NodeWork = { node, prior: null, state: null, stopped: false, applied: [] };
        work.set(node, w);
        const cached = cache.get(node);
        if (cached) {
          w.prior = cached;
          w.state = cached.snapshot;
        } else if (unsure.has(node) || !options.assumeAbsent?.(node)) {
          loading.push(
            loadForBatch(node).then(
              (prior) => {
                w.prior = prior;
                w.state = prior?.snapshot ?? null;
              },
              (err: unknown) => {
                w.stopped = true;
                fail(seq, err);
              },
            ),
          );
        }
      }
      if (loading.length > 0) await Promise.all(loading);

      // 2. Fold in stream order (so each node's events in order, and the outputs in sequence
      //    order). Each output is encoded at once and only its encoded form is held; a fold is
      //    kept only when asked (keepResult).
      const keep = options.keepResult;
      let list: unknown[] = [];
      /** The sequence of the event each output of `list` comes from. */
      const seqOf: number[] = [];
      const add = (output: Output, seq: number) => {
        list.push(outputs.encode ? outputs.encode(output) : output);
        seqOf.push(seq);
      };
      for (const { event, seq } of items) {
        const w = work.get(event.node)!;
        if (w.stopped) continue;
        if (w.state && seq <= w.state.lastSeq) {
          skipped += 1;
          continue;
        }
        let result: FoldResult;
        try {
          result = fold(decider, w.state, event, seq);
          for (const command of result.commands) add({ type: "command", command }, seq);
          add({ type: "audit", record: result.audit }, seq);
        } catch (err) {
          // What this node folded before stays (saved below); its later events wait for the replay.
          fail(seq, err);
          w.stopped = true;
          continue;
        }
        w.state = result.snapshot;
        const timers = result.snapshot.context.timers;
        w.applied.push(keep === undefined || keep(result) ? { seq, node: w.node, timers, result } : { seq, node: w.node, timers });
      }

      // Steps 3 and 4 in a function of their own: once it runs, this call (and the events it
      // was given) is done with, so nothing holds the parsed events while the outputs are awaited.
      const sendAndSave = async (): Promise<BatchOutcome> => {
        // 3. Every output of the batch, pipelined in sequence order on the connection (so the
        //    streams store them in that order), awaited together.
        const failedSeqs = new Map<number, unknown>();
        let published: unknown[];
        try {
          const sending = list.length > 0 ? outputs.publish(list as Output[]) : Promise.resolve([]);
          list = [];
          published = await sending;
        } catch (err) {
          published = seqOf.map(() => err);
        }
        for (let i = 0; i < published.length; i++) {
          const err = published[i];
          if (err !== null && !failedSeqs.has(seqOf[i]!)) failedSeqs.set(seqOf[i]!, err);
        }

        // 4. One snapshot per node, its last, once all its outputs are stored.
        const applied: AppliedEvent[] = [];
        await Promise.all(
          [...work.values()].map(async (w) => {
            if (w.applied.length === 0) return;
            const first = w.applied[0]!.seq;
            if (failedSeqs.size > 0) {
              const bad = w.applied.find((a) => failedSeqs.has(a.seq));
              if (bad) {
                fail(first, failedSeqs.get(bad.seq));
                return;
              }
            }
            try {
              const revision = await snapshots.put(w.state!, w.prior?.revision ?? 0);
              cache.set(w.node, { snapshot: w.state!, revision });
              for (const a of w.applied) applied.push(a);
            } catch (err) {
              // Someone else wrote this node (another instance), or the store failed: reload
              // it next time.
              drop(w.node);
              fail(first, err);
            }
          }),
        );
        applied.sort((a, b) => a.seq - b.seq);
        if (options.onApplied) for (const a of applied) if (a.result) options.onApplied(a.result);
        return { applied, skipped, failedAt, ...(failedAt !== null ? { error } : {}) };
      };
      return sendAndSave();
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
