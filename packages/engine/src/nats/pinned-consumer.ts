import type { ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream";
import type { Logger } from "@fenceline/bus";
import { ENGINE_PRIORITY_GROUP, Streams } from "@fenceline/streams";
import type { EventMessage, PartitionConsumer } from "../partition-loop.js";

export type PinnedPartitionConsumer = PartitionConsumer & {
  /** Whether the server has pinned this instance's pulls (the partition is this instance's). */
  pinned(): boolean;
  /** Ends the pull subscription (the server unpins it after priority_timeout, or at once with `unpin`). */
  close(): Promise<void>;
};

/**
 * A partition's durable consumer under consumer-pinned ownership (nats-server 2.11+ priority
 * groups, `priority_policy: pinned_client`): every engine instance pulls every partition in
 * the group `engine`, the server delivers to one of them (the pinned client) and pins another
 * when the pinned one has not pulled for `priority_timeout`.
 *
 * One pull subscription lives as long as the worker: a new one would lose the pin id. When a
 * delivery carries a pin id this instance did not hold, it has just become the owner:
 * `events.pinned` claims the partition, the delivery is dropped, and the next `prepare` resets
 * the consumer to its ack floor (nats-server 2.14's consumer reset, which keeps the pin), since
 * the previous owner may have left deliveries unacknowledged. Deliveries made before the reset
 * are dropped until the first one after it (delivery sequence 1). A 423 status (our pulls no
 * longer hold the pin) is `events.unpinned`.
 */
export function jetStreamPinnedPartitionConsumer(deps: {
  partition: number;
  name: string;
  js: JetStreamClient;
  jsm: JetStreamManager;
  log: Logger;
  maxMessages: number;
  pullExpiresMs: number;
  events: { pinned(partition: number): void; unpinned(partition: number): void };
}): PinnedPartitionConsumer {
  const { jsm, log, partition, name, events } = deps;
  let messages: ConsumerMessages | undefined;
  let starting: Promise<void> | undefined;
  let handlers: { deliver(message: EventMessage): void; ended(): void } | undefined;
  let pin: string | null = null;
  let needsRewind = false;
  let awaitingFirst = false;
  let closed = false;
  const last = new Map<number, JsMsg>();
  const waiting: EventMessage[] = [];

  const lost = (why: string) => {
    if (pin === null) return;
    pin = null;
    needsRewind = false;
    log.info({ partition, why }, `partition ${partition}: unpinned (${why})`);
    events.unpinned(partition);
  };

  const callback = (m: JsMsg) => {
    const id = m.headers?.get("Nats-Pin-Id") || null;
    if (id !== null && id !== pin) {
      pin = id;
      needsRewind = true;
      log.info({ partition, pin: id }, `partition ${partition}: pinned to this instance`);
      events.pinned(partition);
      handlers?.ended();
      return;
    }
    if (needsRewind) return;
    if (awaitingFirst) {
      if (m.info.deliverySequence !== 1) return;
      awaitingFirst = false;
    }
    last.set(m.seq, m);
    const message = { subject: m.subject, data: m.data, seq: m.seq, deliverySeq: m.info.deliverySequence };
    // Between two subscriptions of the loop (it prepares before it subscribes again) deliveries wait here.
    if (handlers) handlers.deliver(message);
    else waiting.push(message);
  };

  const ensureConsuming = () =>
    (starting ??= (async () => {
      const consumer = await deps.js.consumers.get(Streams.events, name);
      const subscription = await consumer.consume({
        group: ENGINE_PRIORITY_GROUP,
        max_messages: deps.maxMessages,
        expires: deps.pullExpiresMs,
        callback,
      });
      messages = subscription;
      void (async () => {
        try {
          for await (const s of subscription.status()) {
            if (s.type === "consumer_unpinned") lost("another instance pulls it");
            else if (s.type === "consumer_deleted" || s.type === "consumer_not_found") subscription.stop();
          }
        } catch {
          // closed
        }
      })();
      void subscription
        .closed()
        .then(
          () => undefined,
          () => undefined,
        )
        .then(() => {
          messages = undefined;
          starting = undefined;
          lost("subscription closed");
          handlers?.ended();
        });
    })().catch((err: unknown) => {
      starting = undefined;
      throw err;
    }));

  return {
    async prepare(force) {
      if (closed) return 0;
      await ensureConsuming();
      if (pin !== null && (force || needsRewind)) {
        // From now on only the redeliveries the reset starts count (they begin at delivery 1,
        // and may arrive before the reset's reply).
        needsRewind = false;
        awaitingFirst = true;
        last.clear();
        waiting.length = 0;
        const reset = await jsm.consumers.reset(Streams.events, name);
        // Nothing to redeliver: the next delivery is the first of the reset, whenever it comes.
        if (reset.num_pending === 0) return 0;
        // The reset's first redelivery can be lost on its way (a pull request that expired, a
        // consumer leader that moved); everything after it would wait here. Reset again then.
        const resetAt = Date.now();
        const check = setInterval(() => {
          if (!awaitingFirst || closed || pin === null) return clearInterval(check);
          if (Date.now() - resetAt < 2 * deps.pullExpiresMs) return;
          clearInterval(check);
          needsRewind = true;
          handlers?.ended();
        }, deps.pullExpiresMs);
        return 0;
      }
      return (await jsm.consumers.info(Streams.events, name)).delivered.consumer_seq;
    },
    async subscribe(h) {
      handlers = h;
      for (const message of waiting.splice(0)) h.deliver(message);
      return {
        ackThrough(seq) {
          last.get(seq)?.ack();
          for (const s of last.keys()) if (s <= seq) last.delete(s);
        },
        stop() {
          if (handlers === h) handlers = undefined;
        },
      };
    },
    pinned: () => pin !== null,
    async close() {
      closed = true;
      handlers = undefined;
      messages?.stop();
      await messages?.closed().catch(() => {});
    },
  };
}
