import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { AuditRecord, NODE_EVENT_TYPES, NodeEvent, parseMessage } from "@fenceline/contracts";
import type { ReplayEvent } from "@fenceline/engine";
import { Streams, Subjects, parseEventSubject, partitionOf } from "@fenceline/streams";

/** Reads a stream from its first message to its current end (an ordered consumer). */
async function readStream(
  nc: NatsConnection,
  stream: string,
  filter: string,
  each: (m: { seq: number; subject: string; data: Uint8Array }) => void,
): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  if (info.state.messages === 0) return;
  const last = info.state.last_seq;
  const js = jetstream(nc);
  const consumer = await js.consumers.get(stream, { filter_subjects: filter, deliver_policy: DeliverPolicy.All });
  const messages = await consumer.consume({ max_messages: 2_000 });
  for await (const m of messages) {
    each({ seq: m.seq, subject: m.subject, data: m.data });
    if (m.info.pending === 0 || m.seq >= last) break;
  }
  await messages.close().catch(() => {});
}

/**
 * Reads FL_EVENTS as the engine does: invalid messages and events published on another node's
 * subject were dead-lettered by the engine and never applied, so they are skipped here too.
 */
export async function readEvents(nc: NatsConnection, node?: string): Promise<ReplayEvent[]> {
  const out: ReplayEvent[] = [];
  await readStream(nc, Streams.events, node ? Subjects.eventsOf(node) : Subjects.eventAll, (m) => {
    const parsed = parseMessage(NodeEvent, m.data, { knownTypes: NODE_EVENT_TYPES });
    if (!parsed.ok) return;
    const subject = parseEventSubject(m.subject);
    if (subject?.node !== parsed.value.node || subject.partition !== partitionOf(subject.node)) return;
    out.push({ event: parsed.value, seq: m.seq });
  });
  return out;
}

/** FL_AUDIT from its first record to its current end (one node's with `node`); invalid records are left out. */
export async function readAuditRecords(nc: NatsConnection, node?: string): Promise<AuditRecord[]> {
  const out: AuditRecord[] = [];
  await readStream(nc, Streams.audit, node ? Subjects.audit(node) : Subjects.auditAll, (m) => {
    const parsed = parseMessage(AuditRecord, m.data);
    if (parsed.ok) out.push(parsed.value);
  });
  return out;
}

/** Reads the audit stream in order; `follow` keeps going, otherwise stops at the end. */
export async function* readAudit(nc: NatsConnection, options: { node?: string; follow?: boolean }): AsyncGenerator<AuditRecord> {
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const filter = options.node ? Subjects.audit(options.node) : Subjects.auditAll;
  const info = await jsm.streams.info(Streams.audit);
  if (info.state.messages === 0 && !options.follow) return;
  const consumer = await js.consumers.get(Streams.audit, { filter_subjects: filter, deliver_policy: DeliverPolicy.All });
  const messages = await consumer.consume();
  try {
    for await (const m of messages) {
      const parsed = AuditRecord.safeParse(m.json());
      if (parsed.success) yield parsed.data;
      if (!options.follow && m.info.pending === 0) break;
    }
  } finally {
    await messages.close().catch(() => {});
  }
}
