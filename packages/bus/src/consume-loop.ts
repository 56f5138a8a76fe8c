import { parseMessage, type DeadLetter } from "@fenceline/contracts";
import type { Logger } from "./logger.js";

/**
 * A message of a durable consumer with explicit acks, whatever carries it: a JetStream message
 * (`JsMsg` has this shape) or the chaos lab's in-memory one.
 */
export interface ConsumedMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  /** Its stream sequence. */
  readonly seq: number;
  readonly info: { readonly deliveryCount: number };
  ack(): void;
  /** Redeliver it after `millis` (at once without). */
  nak(millis?: number): void;
  /** Never redeliver it. */
  term(reason?: string): void;
  /** Restart its ack wait: still being worked on. */
  working(): void;
}

/** Where an invalid input goes (stream FL_DLQ, `fl.dlq.<source>`), with a stable id per input. */
export type DeadLetterSink = (letter: {
  subject: string;
  data: Uint8Array;
  reason: DeadLetter["reason"];
  error: string;
  msgID: string;
}) => Promise<void>;

/** A zod schema, as contracts' `parseMessage` takes it (bus does not depend on zod itself). */
export type MessageSchema = Parameters<typeof parseMessage>[0];
export type SchemaOutput<S extends MessageSchema> = Extract<ReturnType<typeof parseMessage<S>>, { ok: true }>["value"];

export const defaultNakDelay = (deliveryCount: number) => Math.min(30_000, 500 * 2 ** Math.max(0, deliveryCount - 1));

export type SettleOptions<S extends MessageSchema, M extends ConsumedMessage> = {
  /** The stream name in dead-letter ids (`dlq:<stream>:<seq>`). */
  stream: string;
  schema: S;
  /** When given, a message whose `type` is not listed is dead-lettered as "unknown-type". */
  knownTypes?: readonly string[];
  deadLetters: DeadLetterSink;
  log: Logger;
  /**
   * Called once per valid message. The message is acked when `handle` resolves and nak'd
   * (redelivered after `nakDelayMs`) when it throws. `handle` may settle the message itself
   * first (ack, nak, term, or `working()` for long jobs); a second settle is ignored.
   */
  handle: (value: SchemaOutput<S>, msg: M) => Promise<void> | void;
  /** Redelivery delay after `handle` threw; grows with the delivery count by default. */
  nakDelayMs?: (deliveryCount: number) => number;
};

/**
 * Settles one message: parse (`parseMessage`), then an invalid one goes to the dead letters and
 * is terminated (never redelivered), a valid one goes to `handle` and is acked, or nak'd when
 * `handle` threw. Never throws.
 */
export function createSettler<S extends MessageSchema, M extends ConsumedMessage>(options: SettleOptions<S, M>): (msg: M) => Promise<void> {
  const { log, stream } = options;
  const nakDelay = options.nakDelayMs ?? defaultNakDelay;
  const parseOptions = options.knownTypes ? { knownTypes: options.knownTypes } : {};
  return async (msg) => {
    const parsed = parseMessage(options.schema, msg.data, parseOptions);
    if (!parsed.ok) {
      try {
        await options.deadLetters({
          subject: msg.subject,
          data: msg.data,
          reason: parsed.reason,
          error: parsed.error,
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
      log.error(
        { err, subject: msg.subject, seq: msg.seq, deliveryCount: msg.info.deliveryCount, delayMs },
        "handler failed; message will be redelivered",
      );
      msg.nak(delayMs);
    }
  };
}

/** The ordering key of a message by default: the last token of its subject (the node). */
export const lastSubjectToken = (msg: { subject: string }) => msg.subject.slice(msg.subject.lastIndexOf(".") + 1);

export type Dispatcher<M> = {
  /**
   * Settles the messages as they come: with concurrency 1 strictly one after another, else up to
   * `concurrency` at once, those with the same key one after another in the order delivered.
   * Resolves when `messages` ends (messages still being settled keep going: see `idle`).
   */
  run(messages: AsyncIterable<M>): Promise<void>;
  /** Resolves once every message handed out so far is settled. */
  idle(): Promise<void>;
};

export function createDispatcher<M extends { subject: string }>(options: {
  settle: (msg: M) => Promise<void>;
  concurrency?: number;
  keyOf?: (msg: M) => string;
}): Dispatcher<M> {
  const { settle } = options;
  const concurrency = options.concurrency ?? 1;
  const keyOf = options.keyOf ?? lastSubjectToken;
  const chains = new Map<string, Promise<void>>();
  const inFlight = new Set<Promise<void>>();
  return {
    async run(messages) {
      if (concurrency <= 1) {
        for await (const msg of messages) await settle(msg);
        return;
      }
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
    },
    async idle() {
      await Promise.allSettled([...inFlight]);
    },
  };
}
