import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { NODE_EVENT_TYPES, NodeEvent, parseMessage, type DeadLetter } from "@fenceline/contracts";
import { publishDeadLetter, type Logger } from "@fenceline/bus";
import { Consumers, ENGINE_ACK_WAIT_MS, Streams, Subjects, parseEventSubject, partitionOf } from "@fenceline/streams";
import type { BatchOutcome, EngineCore } from "../engine.js";

export const DEFAULT_BATCH_SIZE = 256;
const PULL_EXPIRES_MS = 2_000;

/**
 * Works one partition of FL_EVENTS while this instance holds its lease: pull-consumes the
 * partition's durable consumer (`engine-<p>`, ack policy "all"), takes whatever has arrived as
 * a batch (up to `batchSize`), dead-letters the invalid messages, folds the rest with
 * `core.applyBatch` (outputs published concurrently, one snapshot per node) and acks the whole
 * batch with one ack of its last message.
 *
 * Per-node order, without looking anything up per event. A node's events are all in one
 * partition, whose consumer delivers them in stream order; a redelivery is the only way an
 * earlier event could come after a later one. There are two causes, and the worker removes
 * both by rewinding the consumer (deleting it and creating it again from its ack floor + 1,
 * with the same settings), so that every unacknowledged event comes again at once, in order:
 *   - a batch that failed (outputs, snapshot, or the fold threw): the worker acks only the
 *     messages before the first failed event, drops what it has buffered and rewinds;
 *   - a partition taken over from an instance that died with messages in flight: on claim, a
 *     consumer with unacknowledged messages is rewound before it is consumed.
 * Everything after the ack floor was delivered to nobody else since (the lease), and everything
 * at or below it was applied (an instance acks only what it applied and saved), so the rewound
 * consumer replays exactly what may be missing; what was applied already is skipped by the
 * snapshot's lastSeq. Hence no EventLog check (`firstPending`, a direct get per event) here:
 * the single-event `apply` keeps it for adapters that cannot rewind (the simulator).
 */
export class PartitionWorker {
  readonly name: string;
  private stopped = false;
  private queue: JsMsg[] = [];
  private wake: (() => void) | undefined;
  private messages: ConsumerMessages | undefined;
  private generation = 0;
  private failures = 0;
  private done: Promise<void> = Promise.resolve();
  private ready!: () => void;
  /** Resolves once the consumer is checked (rewound if needed) and consuming. */
  readonly started: Promise<void>;

  constructor(
    private readonly deps: {
      partition: number;
      partitions: number;
      js: JetStreamClient;
      jsm: JetStreamManager;
      core: EngineCore;
      log: Logger;
      batchSize?: number;
      /** False once the lease is about to run out: take no new batch. */
      valid: () => boolean;
      /** After each batch: what was applied, and how many messages the batch had. */
      onBatch: (outcome: BatchOutcome, size: number) => void;
    },
  ) {
    this.name = Consumers.enginePartition(deps.partition);
    this.started = new Promise<void>((resolve) => (this.ready = resolve));
  }

  start(): Promise<void> {
    this.done = this.loop();
    return this.started;
  }

  /** Stops pulling; resolves when the batch in progress (if any) is finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.messages?.stop();
    this.wake?.();
    this.ready();
    await this.done;
  }

  private async loop(): Promise<void> {
    const { log, partition } = this.deps;
    let force = false;
    while (!this.stopped) {
      try {
        // Never touch the consumer (rewinding deletes it) without a valid lease: it may be
        // someone else's partition by now.
        while (!this.stopped && !this.deps.valid()) await new Promise((resolve) => setTimeout(resolve, 100));
        if (this.stopped) break;
        await this.rewind(force);
        force = false;
        if (this.stopped) break;
        const generation = ++this.generation;
        this.queue = [];
        const consumer = await this.deps.js.consumers.get(Streams.events, this.name);
        const messages = await consumer.consume({
          max_messages: 2 * (this.deps.batchSize ?? DEFAULT_BATCH_SIZE),
          // Pull requests live 2 s (heartbeats every 1 s): when the consumer's leader moves
          // (a cluster server died) a lost pull is noticed and re-issued within ~2 s, not 30.
          expires: PULL_EXPIRES_MS,
          callback: (m) => {
            if (generation !== this.generation) return;
            this.queue.push(m);
            this.wake?.();
          },
        });
        this.messages = messages;
        let ended = false;
        void messages.closed().then(() => {
          ended = true;
          this.wake?.();
        });
        void this.watchStatus(messages, () => {
          ended = true;
          this.wake?.();
        });
        if (this.stopped) messages.stop();
        this.ready();
        while (!this.stopped && !ended) {
          if (this.queue.length === 0 || !this.deps.valid()) {
            await new Promise<void>((resolve) => {
              this.wake = resolve;
              if (!this.deps.valid()) setTimeout(resolve, 50);
            });
            this.wake = undefined;
            continue;
          }
          const batch = this.queue.splice(0, this.deps.batchSize ?? DEFAULT_BATCH_SIZE);
          if (!(await this.process(batch))) {
            force = true;
            break;
          }
        }
        this.generation += 1;
        messages.stop();
        this.queue = [];
        if (force) await this.pause();
      } catch (err) {
        this.ready();
        if (this.stopped) break;
        log.warn({ err, partition }, `partition ${partition}: consumer failed; retrying`);
        force = true;
        await this.pause();
      }
    }
  }

  private async watchStatus(messages: ConsumerMessages, end: () => void) {
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
  }

  private async pause() {
    this.failures += 1;
    const ms = Math.min(2_000, 50 * 2 ** Math.min(6, this.failures - 1));
    await new Promise((resolve) => setTimeout(resolve, ms));
  }

  /**
   * Makes every unacknowledged message of the partition come again at once, in order: when
   * `force`, or when the consumer has messages in flight (to an instance that died). A missing
   * consumer is created (from the start of the stream: applied events are skipped).
   */
  private async rewind(force: boolean): Promise<void> {
    const { jsm, log, partition } = this.deps;
    let info;
    try {
      info = await jsm.consumers.info(Streams.events, this.name);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
      log.warn({ partition }, `partition ${partition}: consumer ${this.name} missing; creating it from the start of FL_EVENTS`);
      await jsm.consumers.add(Streams.events, this.config(null, 0));
      return;
    }
    if (!force && info.num_ack_pending === 0) return;
    const from = info.ack_floor.stream_seq + 1;
    const config = this.config(info.config, from);
    log.info({ partition, from, unacked: info.num_ack_pending }, `partition ${partition}: replaying from event ${from}`);
    await jsm.consumers.delete(Streams.events, this.name);
    for (let attempt = 0; ; attempt++) {
      try {
        await jsm.consumers.add(Streams.events, config);
        return;
      } catch (err) {
        if (attempt >= 20) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100 * Math.min(10, attempt + 1)));
      }
    }
  }

  private config(current: ConsumerConfig | null, from: number): Partial<ConsumerConfig> & { durable_name: string } {
    return {
      durable_name: this.name,
      filter_subject: Subjects.eventPartition(this.deps.partition),
      ack_policy: AckPolicy.All,
      ack_wait: current?.ack_wait ?? nanos(ENGINE_ACK_WAIT_MS),
      max_ack_pending: current?.max_ack_pending ?? 1000,
      ...(current?.max_deliver && current.max_deliver > 0 ? { max_deliver: current.max_deliver } : {}),
      ...(current?.num_replicas ? { num_replicas: current.num_replicas } : {}),
      ...(from > 1 ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from } : { deliver_policy: DeliverPolicy.All }),
    };
  }

  /** One batch: false when something failed (acked up to just before it; the caller rewinds). */
  private async process(batch: JsMsg[]): Promise<boolean> {
    const { core, log, partition, partitions, js } = this.deps;
    const items: Array<{ event: NodeEvent; seq: number }> = [];
    const letters: Array<{ msg: JsMsg; reason: DeadLetter["reason"]; error: string }> = [];
    for (const msg of batch) {
      const parsed = parseMessage(NodeEvent, msg.data, { knownTypes: NODE_EVENT_TYPES });
      if (!parsed.ok) {
        letters.push({ msg, reason: parsed.reason, error: parsed.error });
        continue;
      }
      const event = parsed.value;
      const subject = parseEventSubject(msg.subject);
      const subjectNode = subject?.node ?? msg.subject;
      if (subjectNode !== event.node) {
        letters.push({ msg, reason: "forbidden", error: `event for node "${event.node}" published on the subject of node "${subjectNode}"` });
        continue;
      }
      const expected = partitionOf(event.node, partitions);
      if (subject!.partition !== expected) {
        letters.push({
          msg,
          reason: "forbidden",
          error: `event for node "${event.node}" published on partition ${subject!.partition}; its partition is ${expected} of ${partitions}`,
        });
        continue;
      }
      items.push({ event, seq: msg.seq });
    }

    let failedAt: number | null = null;
    const failures = await Promise.all(
      letters.map(async ({ msg, reason, error }) => {
        try {
          await publishDeadLetter(js, "engine", msg.subject, msg.data, reason, error, { log, msgID: `dlq:${Streams.events}:${msg.seq}` });
          return null;
        } catch (err) {
          log.error({ err, subject: msg.subject, seq: msg.seq }, "cannot publish a dead letter; will retry");
          return msg.seq;
        }
      }),
    );
    for (const seq of failures) if (seq !== null && (failedAt === null || seq < failedAt)) failedAt = seq;

    let outcome: BatchOutcome;
    try {
      outcome = await core.applyBatch(items);
    } catch (err) {
      outcome = { applied: [], skipped: 0, failedAt: items[0]?.seq ?? null, error: err };
    }
    if (outcome.failedAt !== null && (failedAt === null || outcome.failedAt < failedAt)) failedAt = outcome.failedAt;
    this.deps.onBatch(outcome, batch.length);

    // Ack policy "all": acking the last good message acks every message before it.
    const good = failedAt === null ? batch : batch.filter((m) => m.seq < failedAt!);
    const last = good.reduce<JsMsg | undefined>((a, m) => (a === undefined || m.seq > a.seq ? m : a), undefined);
    last?.ack();
    if (failedAt === null) {
      this.failures = 0;
      return true;
    }
    log.warn({ err: outcome.error, partition, failedAt }, `partition ${partition}: event ${failedAt} not applied; replaying from it`);
    return false;
  }
}
