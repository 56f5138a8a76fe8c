import { NODE_EVENT_TYPES, NodeEvent, parseMessage, type DeadLetter } from "@fenceline/contracts";
import { fnv1a, parseEventSubject } from "@fenceline/streams";
import type { DeadLetterSink, Logger } from "@fenceline/bus";
import type { BatchOutcome, EngineCore } from "./engine.js";
import type { FoldResult } from "./fold.js";

/** One FL_EVENTS message as a partition's consumer delivered it. */
export type EventMessage = {
  readonly subject: string;
  readonly data: Uint8Array;
  /** Its stream sequence. */
  readonly seq: number;
  /**
   * The consumer's delivery sequence (JetStream's consumer sequence): one more for every
   * delivery, redeliveries included. A gap means a delivery was lost on its way.
   */
  readonly deliverySeq: number;
};

/**
 * One partition's durable consumer of FL_EVENTS (ack policy "all") as the partition loop drives
 * it. Adapters: JetStream (nats/partition-worker.ts) and the chaos lab's in-memory JetStream.
 */
export interface PartitionConsumer {
  /**
   * Gets the consumer ready for a subscription. When `force`, or when it has messages in flight
   * (delivered to an instance that died), it makes every unacknowledged message come again at
   * once, in order (JetStream: a consumer reset to its ack floor, nats-server 2.14+).
   * A missing consumer is created. Resolves with the delivery sequence of the last message the
   * consumer delivered (0 after a rewind): the next delivery's is one more.
   */
  prepare(force: boolean): Promise<number>;
  /**
   * Starts delivering, in delivery order. `ended` is called when the subscription ends by itself
   * (the consumer was deleted, the connection closed).
   */
  subscribe(handlers: { deliver(message: EventMessage): void; ended(): void }): Promise<EventSubscription>;
}

export interface EventSubscription {
  /** Acknowledges the message of stream sequence `seq` and, ack policy "all", every one before it. */
  ackThrough(seq: number): void;
  stop(): void;
}

export const DEFAULT_BATCH_SIZE = 256;

export type PartitionLoopOptions = {
  partition: number;
  partitions: number;
  consumer: PartitionConsumer;
  core: EngineCore;
  deadLetters: DeadLetterSink;
  log: Logger;
  /** The stream name in dead-letter ids (`dlq:<stream>:<seq>`). */
  stream?: string;
  batchSize?: number;
  /** False once the lease is about to run out: take no new batch. */
  valid: () => boolean;
  /**
   * Whether the loop may prepare and subscribe to the consumer now (default: `valid`). Under
   * consumer-pinned ownership every instance pulls every partition to compete for it, and only
   * the pinned one takes batches.
   */
  mayConsume?: () => boolean;
  /** After each batch: what was applied, and how many messages the batch had. */
  onBatch: (outcome: BatchOutcome, size: number) => void;
  /** Waits `ms` (the real clock in production, the virtual one in the lab). */
  sleep: (ms: number) => Promise<void>;
  /**
   * Awaited before each batch is taken. In production a turn of the event loop (setImmediate):
   * the partitions woken by one read would otherwise fold one after the other in a single turn,
   * each batch's outputs waiting for the others' folds before nats.js writes them (a flush is a
   * microtask queued behind theirs), and the next read (acknowledgements, deliveries, lease
   * renewals) waiting for all of them.
   */
  beforeBatch?: () => Promise<void>;
};

export type PartitionLoop = {
  /** Resolves once the consumer is checked (rewound if needed) and consuming. */
  start(): Promise<void>;
  /** Stops taking batches; resolves when the batch in progress (if any) is finished. */
  stop(): Promise<void>;
};

/**
 * Works one partition of FL_EVENTS, whatever carries it: takes whatever has arrived as a batch
 * (up to `batchSize`), dead-letters the invalid messages, folds the rest with `core.applyBatch`
 * (outputs published concurrently, one snapshot per node) and acks the whole batch with one ack
 * of its last message.
 *
 * Per-node order, without looking anything up per event. A node's events are all in one
 * partition, whose consumer delivers them in stream order; a redelivery is the only way an
 * earlier event could come after a later one. There are three causes, and the loop removes each
 * by rewinding the consumer (`prepare(true)`), so that every unacknowledged event comes again at
 * once, in order:
 *   - a batch that failed (outputs, snapshot, or the fold threw): the loop acks only the
 *     messages before the first failed event, drops what it has buffered and rewinds;
 *   - a delivery lost on its way (a gap in the delivery sequence: a dropped connection, a pull
 *     request lost when the consumer's leader moved): the loop applies what came before the gap
 *     and rewinds, because acking a later message would acknowledge the lost one too;
 *   - a partition taken over from an instance that died with messages in flight: `prepare`
 *     rewinds a consumer with unacknowledged messages before it is consumed.
 * Everything after the ack floor was delivered to nobody else since (the lease), and everything
 * at or below it was applied (the loop acks only what it applied and saved, and never past a
 * message it did not see), so the rewound consumer replays exactly what may be missing; what was
 * applied already is skipped by the snapshot's lastSeq.
 */
export function createPartitionLoop(deps: PartitionLoopOptions): PartitionLoop {
  const { log, partition, consumer, sleep } = deps;
  const batchSize = deps.batchSize ?? DEFAULT_BATCH_SIZE;
  const stream = deps.stream ?? "FL_EVENTS";
  let stopped = false;
  let queue: EventMessage[] = [];
  let wake: (() => void) | undefined;
  let subscription: EventSubscription | undefined;
  let generation = 0;
  let failures = 0;
  let done: Promise<void> = Promise.resolve();
  let ready!: () => void;
  const started = new Promise<void>((resolve) => (ready = resolve));
  let stopSignal!: () => void;
  const stopping = new Promise<void>((resolve) => (stopSignal = resolve));

  const pause = async () => {
    failures += 1;
    const ms = Math.min(2_000, 50 * 2 ** Math.min(6, failures - 1));
    await Promise.race([sleep(ms), stopping]);
  };

  async function loop(): Promise<void> {
    let force = false;
    while (!stopped) {
      try {
        // Never touch the consumer (rewinding deletes it) without a valid lease: it may be
        // someone else's partition by now.
        const mayConsume = deps.mayConsume ?? deps.valid;
        while (!stopped && !mayConsume()) await Promise.race([sleep(100), stopping]);
        if (stopped) break;
        const lastDelivered = await consumer.prepare(force);
        force = false;
        if (stopped) break;
        const current = ++generation;
        queue = [];
        let ended = false;
        /** Set when a delivery was lost: what came before it is still applied, then the loop rewinds. */
        let gap = false;
        let nextDelivery = lastDelivered + 1;
        const end = () => {
          ended = true;
          wake?.();
        };
        subscription = await consumer.subscribe({
          deliver: (m) => {
            if (current !== generation || gap) return;
            if (m.deliverySeq !== nextDelivery) {
              log.warn(
                { partition, expected: nextDelivery, got: m.deliverySeq, seq: m.seq },
                `partition ${partition}: a delivery was lost (delivery ${nextDelivery} missing); replaying from the ack floor`,
              );
              gap = true;
              wake?.();
              return;
            }
            nextDelivery += 1;
            queue.push(m);
            wake?.();
          },
          ended: end,
        });
        if (stopped) subscription.stop();
        ready();
        while (!stopped && !ended) {
          if (queue.length === 0) {
            if (gap) {
              force = true;
              break;
            }
            await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
            continue;
          }
          if (deps.beforeBatch) {
            await deps.beforeBatch();
            if (stopped || ended) break;
          }
          if (!deps.valid()) {
            await new Promise<void>((resolve) => {
              wake = resolve;
              void sleep(50).then(resolve);
            });
            wake = undefined;
            continue;
          }
          const batch = queue.splice(0, batchSize);
          if (!(await process(batch, subscription))) {
            force = true;
            break;
          }
        }
        generation += 1;
        subscription.stop();
        queue = [];
        if (force) await pause();
      } catch (err) {
        ready();
        if (stopped) break;
        log.warn({ err, partition }, `partition ${partition}: consumer failed; retrying`);
        force = true;
        await pause();
      }
    }
  }

  /**
   * What an event subject says, whatever the event: its node, and why the engine refuses it
   * (null: it does not). Kept per subject (a partition has one per node), up to a bound.
   */
  const subjects = new Map<string, { node: string; misplaced: string | null }>();
  function subjectOf(raw: string): { node: string; misplaced: string | null } {
    let known = subjects.get(raw);
    if (known) return known;
    const subject = parseEventSubject(raw);
    if (!subject) known = { node: raw, misplaced: `published on "${raw}", which is not an event subject` };
    else {
      // The server chose the partition (FL_EVENTS's subject transform); the engine must agree,
      // or a node's events would be applied by one instance and its timers fired by another.
      const expected = fnv1a(subject.token) % deps.partitions; // partitionOf(node): the token is the node's
      known = {
        node: subject.node,
        misplaced:
          subject.partition === expected
            ? null
            : `stored in partition ${subject.partition}; the engine places it in ${expected} of ${deps.partitions}`,
      };
    }
    if (subjects.size >= 10_000) subjects.clear();
    subjects.set(raw, known);
    return known;
  }

  /** One batch: false when something failed (acked up to just before it; the caller rewinds). */
  async function process(batch: EventMessage[], sub: EventSubscription): Promise<boolean> {
    const { core } = deps;
    let items: Array<{ event: NodeEvent; seq: number }> = [];
    const letters: Array<{ msg: EventMessage; reason: DeadLetter["reason"]; error: string }> = [];
    for (const msg of batch) {
      const parsed = parseMessage(NodeEvent, msg.data, { knownTypes: NODE_EVENT_TYPES });
      if (!parsed.ok) {
        letters.push({ msg, reason: parsed.reason, error: parsed.error });
        continue;
      }
      const event = parsed.value;
      const subject = subjectOf(msg.subject);
      if (subject.node !== event.node) {
        letters.push({
          msg,
          reason: "forbidden",
          error: `event for node "${event.node}" published on the subject of node "${subject.node}"`,
        });
        continue;
      }
      if (subject.misplaced !== null) {
        letters.push({ msg, reason: "forbidden", error: `event for node "${event.node}" ${subject.misplaced}` });
        continue;
      }
      items.push({ event, seq: msg.seq });
    }

    let failedAt: number | null = null;
    const unsent = await Promise.all(
      letters.map(async ({ msg, reason, error }) => {
        try {
          await deps.deadLetters({ subject: msg.subject, data: msg.data, reason, error, msgID: `dlq:${stream}:${msg.seq}` });
          return null;
        } catch (err) {
          log.error({ err, subject: msg.subject, seq: msg.seq }, "cannot publish a dead letter; will retry");
          return msg.seq;
        }
      }),
    );
    for (const seq of unsent) if (seq !== null && (failedAt === null || seq < failedAt)) failedAt = seq;

    let outcome: BatchOutcome;
    const firstSeq = items[0]?.seq ?? null;
    try {
      const applying = core.applyBatch(items);
      // The parsed events are garbage once folded: hold none of them while the outputs are awaited.
      items = [];
      outcome = await applying;
    } catch (err) {
      outcome = { applied: [], skipped: 0, failedAt: firstSeq, error: err };
    }
    if (outcome.failedAt !== null && (failedAt === null || outcome.failedAt < failedAt)) failedAt = outcome.failedAt;
    deps.onBatch(outcome, batch.length);

    // Ack policy "all": acking the last good message acks every message before it.
    let last: number | undefined;
    for (const m of batch) if ((failedAt === null || m.seq < failedAt) && (last === undefined || m.seq > last)) last = m.seq;
    if (last !== undefined) sub.ackThrough(last);
    if (failedAt === null) {
      failures = 0;
      return true;
    }
    log.warn({ err: outcome.error, partition, failedAt }, `partition ${partition}: event ${failedAt} not applied; replaying from it`);
    return false;
  }

  return {
    start() {
      done = loop();
      return started;
    },
    async stop() {
      stopped = true;
      stopSignal();
      subscription?.stop();
      wake?.();
      ready();
      await done;
    },
  };
}

/**
 * What the engine process does after each batch, in production and in the lab: hands each
 * applied node's deadlines after its last event of the batch to the timer service (the earlier
 * ones were replaced within the batch, before any tick could see them) and logs the transitions
 * (info) and stays (debug) of the folds the core kept (`keepFoldsToLog`).
 */
export function trackApplied(
  outcome: BatchOutcome,
  timers: { track(node: string, timers: Readonly<Record<string, number>>): void },
  log: Logger,
): void {
  const { applied } = outcome;
  const tracked = new Set<string>();
  for (let i = applied.length - 1; i >= 0; i--) {
    const { node, timers: deadlines } = applied[i]!;
    if (tracked.has(node)) continue;
    tracked.add(node);
    timers.track(node, deadlines);
  }
  const info = log.isLevelEnabled("info");
  const debug = log.isLevelEnabled("debug");
  for (const { result } of applied) {
    if (!result) continue;
    const { audit } = result;
    if (audit.changed ? !info : !debug) continue;
    const fields = {
      node: audit.node,
      seq: audit.seq,
      event: audit.event.type,
      from: audit.from,
      to: audit.to,
      epoch: audit.epoch,
      commands: audit.commands.map((c) => c.kind),
      reason: audit.reason,
    };
    if (audit.changed) log.info(fields, `${audit.node}: ${audit.from} → ${audit.to}`);
    else log.debug(fields, `${audit.node}: ${audit.event.type} in ${audit.to}`);
  }
}

/**
 * The folds `trackApplied` logs with `log` at its current level (transitions at info, every
 * event at debug): what the engine core keeps of a batch when nothing else needs its folds.
 */
export function keepFoldsToLog(log: Logger): (result: FoldResult) => boolean {
  return (result) => log.isLevelEnabled(result.audit.changed ? "info" : "debug");
}
