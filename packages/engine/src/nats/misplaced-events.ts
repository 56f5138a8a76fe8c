import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { publishDeadLetter, type Logger } from "@fenceline/bus";
import { Streams, Subjects } from "@fenceline/streams";

/** The queue group every engine instance joins, so that one of them handles each message. */
export const MISPLACED_EVENTS_QUEUE = "engine-misplaced";

/**
 * Why an event published on `subject` (under `fl.evt`, more than one token after it) is not
 * stored. `fl.evt.<p>.<node>` is what publishers wrote before the server partitioned events.
 */
export function misplacedReason(subject: string): string {
  const tokens = subject.split(".");
  const node = tokens.at(-1);
  if (tokens.length === 4 && /^\d+$/.test(tokens[2]!)) {
    return `${subject} is a per-partition subject, which publishers wrote before the server partitioned events; publish on fl.evt.${node} (${Streams.events} places the event in its partition itself)`;
  }
  return `no stream stores ${subject}: node events are published on fl.evt.<node>`;
}

/**
 * Refuses events published where no stream stores them (`fl.evt.*.>`): a JetStream publisher
 * gets an error with the reason (instead of "no responders"), and the message lands in FL_DLQ
 * (`fl.dlq.engine`, reason "forbidden") with it, so a fire-and-forget publish is not lost
 * silently either. One instance of the queue group handles each message.
 */
export function refuseMisplacedEvents(nc: NatsConnection, log: Logger): Subscription {
  const js = jetstream(nc);
  return nc.subscribe(Subjects.eventMisplaced, {
    queue: MISPLACED_EVENTS_QUEUE,
    callback: (err, m) => {
      if (err) return;
      const reason = misplacedReason(m.subject);
      // The shape of a JetStream error reply: js.publish throws it with this description.
      if (m.reply) m.respond(JSON.stringify({ error: { code: 400, description: reason } }));
      const msgId = m.headers?.get("Nats-Msg-Id");
      void publishDeadLetter(js, "engine", m.subject, m.data, "forbidden", reason, {
        log,
        ...(msgId ? { msgID: `dlq:misplaced:${msgId}` } : {}),
      }).catch((e: unknown) =>
        log.error({ err: e, subject: m.subject }, "cannot dead-letter an event published on a subject no stream stores"),
      );
    },
  });
}
