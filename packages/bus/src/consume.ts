import type { JetStreamClient, JsMsg } from "@nats-io/jetstream";
import type { Logger } from "./logger.js";
import { createDispatcher, createSettler, type DeadLetterSink, type MessageSchema, type SchemaOutput } from "./consume-loop.js";
import { publishDeadLetter } from "./publish.js";

export type { MessageSchema, SchemaOutput } from "./consume-loop.js";

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

/** Dead letters on JetStream: `fl.dlq.<source>` (stream FL_DLQ), with a warning line each. */
export function jetStreamDeadLetters(js: JetStreamClient, source: string, log: Logger): DeadLetterSink {
  return async ({ subject, data, reason, error, msgID }) => {
    await publishDeadLetter(js, source, subject, data, reason, error, { log, msgID });
  };
}

/**
 * Pull-consumes a durable consumer and settles every message with the transport-agnostic
 * settler and dispatcher (consume-loop.ts, which the chaos lab runs too): invalid messages go
 * to the dead-letter stream and are terminated (never redelivered); valid ones go to `handle`.
 * Errors are logged and never end the loop; only `stop()` does.
 */
export function consumeValidated<S extends MessageSchema>(options: ConsumeValidatedOptions<S>): ValidatedConsumer {
  const { js, stream, consumer, log } = options;
  let stopped = false;
  let current: { stop(): void } | undefined;
  let wake: (() => void) | undefined;

  const settle = createSettler<S, JsMsg>({
    stream,
    schema: options.schema,
    ...(options.knownTypes ? { knownTypes: options.knownTypes } : {}),
    deadLetters: jetStreamDeadLetters(js, options.dlqSource, log),
    log,
    handle: options.handle,
    ...(options.nakDelayMs ? { nakDelayMs: options.nakDelayMs } : {}),
  });
  const dispatcher = createDispatcher<JsMsg>({
    settle,
    concurrency: options.concurrency ?? 1,
    ...(options.keyOf ? { keyOf: options.keyOf } : {}),
  });

  const loop = async () => {
    while (!stopped) {
      try {
        const c = await js.consumers.get(stream, consumer);
        // Pull requests of 5 s (heartbeats every 2.5 s) rather than 30: on a cluster, a pull lost
        // when the consumer's leader moves is re-issued within ~5 s.
        const messages = await c.consume({ max_messages: options.maxMessages ?? 100, expires: 5_000 });
        current = messages;
        if (stopped) messages.stop();
        await dispatcher.run(messages);
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
      await dispatcher.idle();
    },
  };
}
