import type { JetStreamClient, JsMsg } from "@nats-io/jetstream";
import { parseMessage } from "@fenceline/contracts";
import type { Logger } from "./logger.js";
import { publishDeadLetter } from "./publish.js";

/** A zod schema, as contracts' `parseMessage` takes it (bus does not depend on zod itself). */
export type MessageSchema = Parameters<typeof parseMessage>[0];
export type SchemaOutput<S extends MessageSchema> = Extract<ReturnType<typeof parseMessage<S>>, { ok: true }>["value"];

export type ConsumeValidatedOptions<S extends MessageSchema> = {
  js: JetStreamClient;
  stream: string;
  /** A durable consumer that already exists (see provisionStreams). */
  consumer: string;
  schema: S;
  /** When given, a message whose `type` is not listed is dead-lettered as "unknown-type". */
  knownTypes?: readonly string[];
  /** The `<source>` of `fl.dlq.<source>` for invalid messages. */
  dlqSource: string;
  log: Logger;
  /**
   * Called once per valid message, one at a time, in stream order. The loop acks the message
   * when `handle` resolves and naks it (redelivered after `nakDelayMs`) when it throws. `handle`
   * may settle the message itself first (ack, nak, term, or `working()` for long jobs); a
   * second settle is ignored by the client, so the loop's ack is then a no-op.
   */
  handle: (value: SchemaOutput<S>, msg: JsMsg) => Promise<void> | void;
  /** Redelivery delay after `handle` threw; grows with the delivery count by default. */
  nakDelayMs?: (deliveryCount: number) => number;
  /** Pause before re-subscribing after the consume loop itself failed. */
  retryMs?: number;
  maxMessages?: number;
  /**
   * How many messages may be in `handle` at once (default 1: strictly one after another).
   * Messages with the same `keyOf` are still handled one after another, in stream order.
   */
  concurrency?: number;
  /** The ordering key of a message; default: the last token of its subject (the node). */
  keyOf?: (msg: JsMsg) => string;
};

export type ValidatedConsumer = {
  /** Stops pulling; resolves once the message in progress is settled. */
  stop(): Promise<void>;
  /** Resolves when the loop has ended (after stop()). */
  readonly done: Promise<void>;
};

const defaultNakDelay = (deliveryCount: number) => Math.min(30_000, 500 * 2 ** Math.max(0, deliveryCount - 1));

/**
 * Pull-consumes a durable consumer and validates every message with `parseMessage`. Invalid
 * ones go to the dead-letter stream and are terminated (never redelivered); valid ones go to
 * `handle`. Errors are logged and never end the loop; only `stop()` does.
 */
export function consumeValidated<S extends MessageSchema>(options: ConsumeValidatedOptions<S>): ValidatedConsumer {
  const { js, stream, consumer, log } = options;
  const nakDelay = options.nakDelayMs ?? defaultNakDelay;
  let stopped = false;
  let current: { stop(): void } | undefined;
  let wake: (() => void) | undefined;

  const settle = async (msg: JsMsg) => {
    const parsed = parseMessage(options.schema, msg.data, options.knownTypes ? { knownTypes: options.knownTypes } : {});
    if (!parsed.ok) {
      try {
        await publishDeadLetter(js, options.dlqSource, msg.subject, msg.data, parsed.reason, parsed.error, {
          log,
          msgID: `dlq:${stream}:${msg.seq}`,
        });
        msg.term();
      } catch (err) {
        // Not recorded anywhere yet: keep the message and try again later.
        log.error({ err, subject: msg.subject, seq: msg.seq }, "cannot publish a dead letter; will retry");
        msg.nak(nakDelay(msg.info.deliveryCount));
      }
      return;
    }
    try {
      await options.handle(parsed.value, msg);
      msg.ack();
    } catch (err) {
      const delayMs = nakDelay(msg.info.deliveryCount);
      log.error({ err, subject: msg.subject, seq: msg.seq, deliveryCount: msg.info.deliveryCount, delayMs }, "handler failed; message will be redelivered");
      msg.nak(delayMs);
    }
  };

  const concurrency = options.concurrency ?? 1;
  const keyOf = options.keyOf ?? ((msg: JsMsg) => msg.subject.slice(msg.subject.lastIndexOf(".") + 1));
  const chains = new Map<string, Promise<void>>();
  const inFlight = new Set<Promise<void>>();

  const loop = async () => {
    while (!stopped) {
      try {
        const c = await js.consumers.get(stream, consumer);
        // Pull requests of 5 s (heartbeats every 2.5 s) rather than 30: on a cluster, a pull lost
        // when the consumer's leader moves is re-issued within ~5 s.
        const messages = await c.consume({ max_messages: options.maxMessages ?? 100, expires: 5_000 });
        current = messages;
        if (stopped) messages.stop();
        if (concurrency <= 1) {
          for await (const msg of messages) await settle(msg);
        } else {
          for await (const msg of messages) {
            const key = keyOf(msg);
            const run = (chains.get(key) ?? Promise.resolve()).then(() => settle(msg));
            const tracked = run.finally(() => {
              inFlight.delete(tracked);
              if (chains.get(key) === run) chains.delete(key);
            });
            chains.set(key, run);
            inFlight.add(tracked);
            while (inFlight.size >= concurrency) await Promise.race(inFlight);
          }
        }
      } catch (err) {
        if (stopped) break;
        log.error({ err, stream, consumer }, "consume failed; retrying");
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, options.retryMs ?? 1_000);
        });
      }
    }
  };

  const done = loop();
  return {
    done,
    async stop() {
      stopped = true;
      current?.stop();
      wake?.();
      await done;
      await Promise.allSettled([...inFlight]);
    },
  };
}
