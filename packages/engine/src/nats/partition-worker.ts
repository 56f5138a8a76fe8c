import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";

const ACK = Uint8Array.of(43, 65, 67, 75); // "+ACK"
import { jetStreamDeadLetters, type Logger } from "@fenceline/bus";
import { Consumers, Streams, enginePartitionConsumer } from "@fenceline/streams";
import type { BatchOutcome, EngineCore } from "../engine.js";
import { createPartitionLoop, DEFAULT_BATCH_SIZE, type PartitionConsumer, type PartitionLoop } from "../partition-loop.js";
import { jetStreamPinnedPartitionConsumer } from "./pinned-consumer.js";

export { DEFAULT_BATCH_SIZE };
export const PULL_EXPIRES_MS = 2_000;

/**
 * Works one partition of FL_EVENTS on JetStream while this instance holds its lease: the
 * partition loop (partition-loop.ts, the same code the chaos lab runs) over the partition's
 * durable consumer `engine-<p>` (ack policy "all"), pull-consumed.
 */
export class PartitionWorker {
  readonly name: string;
  readonly #loop: PartitionLoop;
  readonly #close: () => Promise<void>;
  /** Resolves once the consumer is checked (rewound if needed) and consuming. */
  readonly started: Promise<void>;
  #start!: () => void;

  constructor(deps: {
    partition: number;
    partitions: number;
    nc: NatsConnection;
    js: JetStreamClient;
    jsm: JetStreamManager;
    core: EngineCore;
    log: Logger;
    batchSize?: number;
    /** False once the lease is about to run out: take no new batch. */
    valid: () => boolean;
    /** After each batch: what was applied, and how many messages the batch had. */
    onBatch: (outcome: BatchOutcome, size: number) => void;
    /**
     * Consumer-pinned ownership: the worker pulls in the priority group whether it owns the
     * partition or not, and `events` hears when the server pins or unpins it.
     */
    pinned?: { pullExpiresMs: number; events: { pinned(partition: number): void; unpinned(partition: number): void } };
  }) {
    this.name = Consumers.enginePartition(deps.partition);
    const batchSize = deps.batchSize ?? DEFAULT_BATCH_SIZE;
    let consumer: PartitionConsumer;
    if (deps.pinned) {
      const pinned = jetStreamPinnedPartitionConsumer({
        ...deps,
        name: this.name,
        maxMessages: 2 * batchSize,
        pullExpiresMs: deps.pinned.pullExpiresMs,
        events: deps.pinned.events,
      });
      this.#close = () => pinned.close();
      consumer = pinned;
    } else {
      consumer = jetStreamPartitionConsumer({ ...deps, name: this.name, maxMessages: 2 * batchSize });
      this.#close = async () => {};
    }
    this.#loop = createPartitionLoop({
      partition: deps.partition,
      partitions: deps.partitions,
      consumer,
      ...(deps.pinned ? { mayConsume: () => true } : {}),
      core: deps.core,
      deadLetters: jetStreamDeadLetters(deps.js, "engine", deps.log),
      log: deps.log,
      stream: Streams.events,
      batchSize,
      valid: deps.valid,
      onBatch: deps.onBatch,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      beforeBatch: () => new Promise((resolve) => setImmediate(resolve)),
    });
    this.started = new Promise<void>((resolve) => (this.#start = resolve));
  }

  start(): Promise<void> {
    void this.#loop.start().then(this.#start);
    return this.started;
  }

  /** Stops pulling; resolves when the batch in progress (if any) is finished. */
  async stop(): Promise<void> {
    this.#start();
    await this.#loop.stop();
    await this.#close();
  }
}

/** A partition's durable consumer on JetStream, as the partition loop drives it. */
export function jetStreamPartitionConsumer(deps: {
  partition: number;
  /** The connection `js` uses (acks are published on it). */
  nc: NatsConnection;
  name: string;
  js: JetStreamClient;
  jsm: JetStreamManager;
  log: Logger;
  maxMessages: number;
}): PartitionConsumer {
  const { jsm, log, partition, name } = deps;

  /** A missing consumer, created as provisioning would (from the start of the stream). */
  const config = (): Partial<ConsumerConfig> & { durable_name: string } => ({
    ...enginePartitionConsumer(partition),
    durable_name: name,
    deliver_policy: DeliverPolicy.All,
  });

  const watchStatus = async (messages: ConsumerMessages, end: () => void) => {
    try {
      for await (const s of messages.status()) {
        if (s.type === "consumer_deleted" || s.type === "consumer_not_found") {
          end();
          return;
        }
      }
    } catch {
      // closed
    }
  };

  return {
    async prepare(force) {
      let info;
      try {
        info = await jsm.consumers.info(Streams.events, name);
      } catch (err) {
        if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
        log.warn({ partition }, `partition ${partition}: consumer ${name} missing; creating it from the start of FL_EVENTS`);
        await jsm.consumers.add(Streams.events, config());
        return 0;
      }
      if (!force && info.num_ack_pending === 0) return info.delivered.consumer_seq;
      // Back to the ack floor (nats-server 2.14's consumer reset): every unacknowledged message
      // comes again, in order, from delivery 1. The consumer stays, so a rewind needs no new
      // placement of its replicas (which fails while a cluster server is down).
      log.info(
        { partition, from: info.ack_floor.stream_seq + 1, unacked: info.num_ack_pending },
        `partition ${partition}: replaying from event ${info.ack_floor.stream_seq + 1}`,
      );
      await jsm.consumers.reset(Streams.events, name);
      return 0;
    },

    async subscribe({ deliver, ended }) {
      const consumer = await deps.js.consumers.get(Streams.events, name);
      let stopped = false;
      // The reply subjects of the messages not acknowledged yet, to ack through one of them (ack
      // policy "all"): a message's ack is "+ACK" on its reply subject. Only the subject is held,
      // not the delivered message (its parsed delivery info, headers, protocol arguments), which
      // would live until the batch is acked.
      const last = new Map<number, string | { ack(): void }>();

      const messages = await consumer.consume({
        max_messages: deps.maxMessages,
        // Pull requests live 2 s (heartbeats every 1 s): when the consumer's leader moves
        // (a cluster server died) a lost pull is noticed and re-issued within ~2 s, not 30.
        expires: PULL_EXPIRES_MS,
        callback: (m) => {
          if (stopped) return;
          const { streamSequence: seq, deliverySequence: deliverySeq } = m.info;
          const reply = (m as { reply?: unknown }).reply; // JsMsgImpl's; JsMsg does not declare it
          last.set(seq, typeof reply === "string" && reply !== "" ? reply : m);
          deliver({ subject: m.subject, data: m.data, seq, deliverySeq });
        },
      });
      void messages.closed().then(ended, ended);
      void watchStatus(messages, ended);
      return {
        ackThrough(seq) {
          const held = last.get(seq);
          if (typeof held === "string") deps.nc.publish(held, ACK);
          else held?.ack();
          for (const s of last.keys()) if (s <= seq) last.delete(s);
        },
        stop() {
          stopped = true;
          messages.stop();
          last.clear();
        },
      };
    },
  };
}
