import { jetstream, type JetStreamClient, type PubAck } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { ACTUATOR_OF, deadLetter, type AuditRecord, type Command, type DeadLetter, type NodeEvent } from "@fenceline/contracts";
import { Subjects } from "@fenceline/streams";
import { createLogger, type Logger } from "./logger.js";
import type { StreamMessage } from "./pipeline.js";

/** The event's id is its `Nats-Msg-Id`: a retried publish is stored once (`duplicate: true`). */
export function publishEvent(js: JetStreamClient, event: NodeEvent): Promise<PubAck> {
  return js.publish(Subjects.event(event.node), JSON.stringify(event), { msgID: event.id });
}

/** A command as a FL_COMMANDS message: its actuator's and node's subject, its id as `Nats-Msg-Id`. */
export function commandMessage(command: Command): StreamMessage {
  return { subject: Subjects.command(ACTUATOR_OF[command.kind], command.node), data: JSON.stringify(command), msgID: command.id };
}

/** An audit record as a FL_AUDIT message. */
export function auditMessage(record: AuditRecord): StreamMessage {
  return { subject: Subjects.audit(record.node), data: JSON.stringify(record), msgID: record.id };
}

const publishMessage = (js: JetStreamClient, m: StreamMessage) => js.publish(m.subject, m.data, { msgID: m.msgID });

export function publishCommand(js: JetStreamClient, command: Command): Promise<PubAck> {
  return publishMessage(js, commandMessage(command));
}

export function publishAudit(js: JetStreamClient, record: AuditRecord): Promise<PubAck> {
  return publishMessage(js, auditMessage(record));
}

export type DeadLetterOptions = {
  log?: Logger;
  /** Set it to something stable (e.g. the stream sequence) so a redelivered bad input is stored once. */
  msgID?: string;
  /** Defaults to Date.now(). */
  at?: number;
};

let defaultLog: Logger | undefined;

/**
 * Records an input that failed validation on `fl.dlq.<source>` (stream FL_DLQ, so it is kept)
 * and logs one warning line.
 */
export async function publishDeadLetter(
  target: NatsConnection | JetStreamClient,
  source: string,
  subject: string,
  data: Uint8Array,
  reason: DeadLetter["reason"],
  error: string,
  options: DeadLetterOptions = {},
): Promise<PubAck> {
  const js = isJetStreamClient(target) ? target : jetstream(target);
  const record = deadLetter(subject, data, reason, error, options.at ?? Date.now());
  const ack = await js.publish(
    Subjects.deadLetter(source),
    JSON.stringify(record),
    options.msgID === undefined ? {} : { msgID: options.msgID },
  );
  const log = options.log ?? (defaultLog ??= createLogger("dlq"));
  log.warn({ source, subject, reason, error, bytes: data.byteLength, dlqSeq: ack.seq }, `dead letter from ${subject}: ${reason}`);
  return ack;
}

function isJetStreamClient(target: NatsConnection | JetStreamClient): target is JetStreamClient {
  return "consumers" in target && "apiPrefix" in target;
}
