import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { auditMessage, commandMessage, createFastBatchPublisher, createJetStreamPipeline, type Logger } from "@fenceline/bus";
import {
  createJetStreamOutputs,
  createKvSnapshotStore,
  jetStreamPartitionConsumer,
  type EventMessage,
  type EventSubscription,
  type FoldResult,
  type Output,
  type OutputSink,
} from "@fenceline/engine";
import { Buckets, Consumers } from "@fenceline/streams";

/**
 * The throughput benchmark's second floor: exactly the engine's writes, without deciding. For
 * every partition it consumes `engine-<p>` in batches as the engine does (same consumer, same
 * batch size), looks each event's outputs up in `results` (the engine's own fold of the same
 * history, computed beforehand) instead of validating and folding, publishes the same commands
 * and audit records through the same pipeline, saves the same coalesced snapshots with the same
 * compare-and-set, and acks the batch with one ack of its last message (the engine's output
 * sink and snapshot store, createJetStreamOutputs and createKvSnapshotStore).
 *
 * Given `batchSizes` (an engine run's batches, per partition, in order), it takes exactly those
 * batches, waiting until each has arrived: the same number of batches, acks and coalesced
 * snapshot writes as that run. Left to take whatever has arrived, the floor (faster) took smaller
 * batches and wrote more: 400 batches and ~8,300 snapshots per 50,000 events against the engine's
 * ~300 and ~7,150.
 */
export async function runSameWrites(options: {
  nc: NatsConnection;
  /** The fold of every event, by stream sequence. */
  results: ReadonlyMap<number, FoldResult>;
  partitions: number;
  batchSize: number;
  log: Logger;
  /** After each batch: how many events it had, how many snapshots it saved. */
  onBatch: (events: number, snapshots: number) => void;
  /** The batches to take, per partition, in order (an engine run's); then whatever has arrived. */
  batchSizes?: ReadonlyArray<ReadonlyArray<number>>;
  /**
   * How the outputs go: fast batches per stream as the engine sends them (default), or each
   * message with its own PubAck through the pipeline (how the engine sent them before).
   */
  outputs?: "batches" | "pipeline";
}): Promise<{ stop(): Promise<void> }> {
  const { nc, results, log } = options;
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const pipeline = createJetStreamPipeline(nc);
  const fastBatches = createFastBatchPublisher(nc);
  const outputSink: Pick<OutputSink, "publish"> =
    options.outputs === "pipeline"
      ? {
          publish: async (list) =>
            (await pipeline.publish(list.map((o) => (o.type === "command" ? commandMessage(o.command) : auditMessage(o.record))))).map(
              (a) => (a instanceof Error ? a : null),
            ),
        }
      : createJetStreamOutputs(pipeline, fastBatches);
  const snapshots = createKvSnapshotStore(await new Kvm(nc).open(Buckets.nodes), nc, pipeline);
  const revisions = new Map<string, number>();
  const subscriptions: EventSubscription[] = [];
  const done: Array<Promise<void>> = [];
  let stopped = false;

  async function batch(messages: EventMessage[], sub: EventSubscription): Promise<void> {
    const folded = messages.map((m) => results.get(m.seq)!).sort((a, b) => a.audit.seq - b.audit.seq);
    const outputs: Output[] = [];
    const last = new Map<string, FoldResult>();
    for (const r of folded) {
      for (const command of r.commands) outputs.push({ type: "command", command });
      outputs.push({ type: "audit", record: r.audit });
      last.set(r.audit.node, r);
    }
    const acks = await outputSink.publish(outputs);
    const failed = acks.find((a) => a !== null);
    if (failed) throw failed;
    await Promise.all(
      [...last.values()].map(async (r) => {
        revisions.set(r.audit.node, await snapshots.put(r.snapshot, revisions.get(r.audit.node) ?? 0));
      }),
    );
    sub.ackThrough(messages.at(-1)!.seq);
    options.onBatch(messages.length, last.size);
  }

  for (let p = 0; p < options.partitions; p++) {
    const consumer = jetStreamPartitionConsumer({
      partition: p,
      name: Consumers.enginePartition(p),
      nc,
      js,
      jsm,
      log,
      maxMessages: 2 * options.batchSize,
    });
    await consumer.prepare(false);
    const queue: EventMessage[] = [];
    let wake: (() => void) | undefined;
    const sub = await consumer.subscribe({
      deliver: (m) => {
        queue.push(m);
        wake?.();
      },
      ended: () => wake?.(),
    });
    subscriptions.push(sub);
    const sizes = options.batchSizes?.[p] ?? [];
    let taken = 0;
    done.push(
      (async () => {
        while (!stopped) {
          const size = taken < sizes.length ? sizes[taken]! : 0;
          if (queue.length === 0 || queue.length < size) {
            await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
            continue;
          }
          if (size > 0) taken += 1;
          await batch(queue.splice(0, size > 0 ? size : options.batchSize), sub);
        }
      })(),
    );
    subscriptions.push({ ackThrough: () => {}, stop: () => wake?.() });
  }

  return {
    async stop() {
      stopped = true;
      for (const s of subscriptions) s.stop();
      await Promise.all(done);
      pipeline.close();
      fastBatches.close();
    },
  };
}
