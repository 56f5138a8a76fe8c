import { createInbox, headers, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { ErrorCode, FencelineError } from "@fenceline/contracts";
import { DEFAULT_PIPELINE_TIMEOUT_MS, JetStreamPublishError, type StreamMessage } from "./pipeline.js";

export type FastBatchPublisher = {
  /**
   * Publishes `messages`, all for one stream (created with `allow_batched`), as one fast batch
   * and resolves with one entry per message: null once stored (or deduplicated), else the
   * error. Never rejects.
   */
  publish(messages: readonly StreamMessage[]): Promise<Array<Error | null>>;
  close(): void;
};

type Open = { results: Array<Error | null | undefined>; done: () => void; timer: ReturnType<typeof setTimeout> };

/** How many messages the server may take between two flow-control acks (it lowers it itself when other batches run). */
const FLOW = 500;

/**
 * Fast batch publishing (nats-server 2.14, ADR-50): the messages of a batch go out back to back,
 * each with a reply subject that carries the batch (`<inbox>.<id>.<flow>.<gap mode>.<seq>.<op>.$FI`),
 * and the stream answers with a few flow-control acks and one PubAck when the last is stored,
 * instead of one PubAck per message. Gap mode "fail": the batch ends at the first message that
 * fails (its error is reported), and the PubAck's `count` says how many were handled; a message
 * whose `Nats-Msg-Id` is a duplicate is skipped, as a plain publish would be.
 */
export function createFastBatchPublisher(nc: NatsConnection, options: { timeoutMs?: number } = {}): FastBatchPublisher {
  const timeoutMs = options.timeoutMs ?? DEFAULT_PIPELINE_TIMEOUT_MS;
  const inbox = createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
  // Batch ids are per stream, across every client: this inbox's unique token plus a counter.
  const prefix = inbox.slice(inbox.lastIndexOf(".") + 1);
  const open = new Map<string, Open>();
  let next = 0;
  let closed: Error | null = null;

  const finish = (id: string, batch: Open, rest: () => Error | null) => {
    open.delete(id);
    clearTimeout(batch.timer);
    let error: Error | null | undefined;
    for (let i = 0; i < batch.results.length; i++)
      if (batch.results[i] === undefined) batch.results[i] = error === undefined ? (error = rest()) : error;
    batch.done();
  };

  const sub = nc.subscribe(`${inbox}.>`, {
    callback: (err: Error | null, m: Msg) => {
      if (err) {
        for (const [id, batch] of open)
          finish(
            id,
            batch,
            () => new FencelineError(ErrorCode.NatsUnavailable, `JetStream batch acknowledgements: ${err.message}`, { cause: err }),
          );
        return;
      }
      const rest = m.subject.slice(inbox.length + 1);
      const id = rest.slice(0, rest.indexOf("."));
      const batch = open.get(id);
      if (!batch) return;
      if (m.data.length === 0) {
        const code = m.headers?.code ?? 0;
        finish(
          id,
          batch,
          () =>
            new FencelineError(
              ErrorCode.NatsUnavailable,
              code === 503 ? "no responders: the stream is not available (503)" : `JetStream answered with status ${code}`,
            ),
        );
        return;
      }
      let reply: {
        type?: string;
        seq?: number;
        count?: number;
        batch?: string;
        last_seq?: number;
        error?: { code?: number; err_code?: number; description?: string };
      };
      try {
        reply = JSON.parse(new TextDecoder().decode(m.data)) as typeof reply;
      } catch {
        return;
      }
      const refusal = (e: NonNullable<typeof reply.error>) =>
        new JetStreamPublishError(
          `JetStream refused the message: ${e.description ?? "error"} (${e.code ?? "?"}${e.err_code ? `/${e.err_code}` : ""})`,
          e.err_code ?? 0,
        );
      if (reply.type === "ack") return;
      if (reply.type === "err" && reply.seq && reply.error) {
        if (batch.results[reply.seq - 1] === undefined) batch.results[reply.seq - 1] = refusal(reply.error);
        return;
      }
      if (reply.type === "gap") {
        // Messages were lost on their way: in gap mode "fail" the batch ends; the PubAck (if any) says how far it got.
        return;
      }
      if (reply.error) {
        // The first message failed: the batch never started.
        const error = refusal(reply.error);
        finish(id, batch, () => error);
        return;
      }
      // The PubAck: messages 1..count were handled (stored, or skipped as duplicates), unless an error was reported for one.
      const count = reply.count ?? 0;
      for (let i = 0; i < count && i < batch.results.length; i++) if (batch.results[i] === undefined) batch.results[i] = null;
      finish(id, batch, () => new FencelineError(ErrorCode.Internal, `the batch ended after ${count} of ${batch.results.length} messages`));
    },
  });
  void nc.closed().then(() => {
    closed = new FencelineError(ErrorCode.NatsUnavailable, "the NATS connection closed before JetStream acknowledged");
    for (const [id, batch] of open) finish(id, batch, () => closed);
  });

  return {
    publish(messages) {
      if (messages.length === 0) return Promise.resolve([]);
      if (closed || nc.isClosed())
        return Promise.resolve(
          messages.map(() => closed ?? new FencelineError(ErrorCode.NatsUnavailable, "the NATS connection is closed")),
        );
      const id = `${prefix}${(next++).toString(36)}`;
      return new Promise((resolve) => {
        const batch: Open = {
          results: new Array(messages.length).fill(undefined),
          done: () => resolve(batch.results as Array<Error | null>),
          timer: setTimeout(
            () =>
              finish(
                id,
                batch,
                () => new FencelineError(ErrorCode.Timeout, `no JetStream acknowledgement of the batch within ${timeoutMs} ms`),
              ),
            timeoutMs,
          ),
        };
        open.set(id, batch);
        const last = messages.length - 1;
        for (let i = 0; i <= last; i++) {
          const { subject, data, msgID, headers: extra } = messages[i]!;
          const h = headers();
          if (msgID !== undefined) h.set("Nats-Msg-Id", msgID);
          if (extra) for (const key in extra) h.set(key, extra[key]!);
          // Operation: 0 start, 1 append, 2 commit (a one-message batch commits at once).
          const op = i === last ? 2 : i === 0 ? 0 : 1;
          try {
            nc.publish(subject, typeof data === "string" ? Buffer.from(data) : data, {
              headers: h,
              reply: `${inbox}.${id}.${FLOW}.fail.${i + 1}.${op}.$FI`,
            });
          } catch (err) {
            finish(id, batch, () => (err instanceof Error ? err : new Error(String(err))));
            return;
          }
        }
      });
    },
    close() {
      closed ??= new FencelineError(ErrorCode.NatsUnavailable, "the fast batch publisher is closed");
      for (const [id, batch] of open) finish(id, batch, () => closed);
      sub.unsubscribe();
    },
  };
}
