import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";

/** Every message stored in a stream, in order, with its subject (optionally only one subject). */
export async function readStream(
  nc: NatsConnection,
  stream: string,
  subject?: string,
): Promise<Array<{ subject: string; seq: number; data: unknown }>> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream);
  const out: Array<{ subject: string; seq: number; data: unknown }> = [];
  if (info.state.messages === 0) return out;
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (m && (subject === undefined || m.subject === subject)) out.push({ subject: m.subject, seq: m.seq, data: m.json() });
  }
  return out;
}
