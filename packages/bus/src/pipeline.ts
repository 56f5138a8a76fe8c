import { createInbox, headers, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { ErrorCode, FencelineError } from "@fenceline/contracts";

/**
 * One message for a JetStream stream. `msgID` is its `Nats-Msg-Id` (a second copy is stored
 * once); `headers` adds others (e.g. `Nats-Expected-Last-Subject-Sequence` for a KV
 * compare-and-set).
 */
export type StreamMessage = { subject: string; data: string | Uint8Array; msgID?: string; headers?: Record<string, string> };

export type JetStreamPipeline = {
  /**
   * Sends every message, in order, before waiting for any acknowledgement, and resolves with one
   * entry per message: its stream sequence once stored (for a duplicate id, the first copy's),
   * else the error (the stream's, with `code` set when it had one; no responders; a timeout; the
   * connection closed). Never rejects.
   */
  publish(messages: readonly StreamMessage[]): Promise<Array<number | Error>>;
  /** Fails what is still waiting and stops listening for acknowledgements. */
  close(): void;
};

export const DEFAULT_PIPELINE_TIMEOUT_MS = 5_000;

type Batch = { results: Array<number | Error | undefined>; waiting: number; done: () => void; timer: ReturnType<typeof setTimeout> };

const decoder = new TextDecoder();

/**
 * JetStream publishes as a pipeline on one connection, for the engine's outputs (thousands per
 * second). A JetStream publish is a core NATS publish to the stream's subject with a reply
 * subject, answered by the stream's PubAck; `js.publish` makes each one a request of its own (a
 * promise, a timer, a subscription entry and, in nats.js, an Error even when it succeeds). Here
 * the replies of every message go to one wildcard inbox subscribed once, a batch has one timer,
 * and an acknowledgement is parsed only when it reports an error. The messages of a batch reach
 * the server in order, so a stream stores them in that order.
 */
export function createJetStreamPipeline(nc: NatsConnection, options: { timeoutMs?: number } = {}): JetStreamPipeline {
  const timeoutMs = options.timeoutMs ?? DEFAULT_PIPELINE_TIMEOUT_MS;
  const inbox = createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
  const batches = new Map<number, Batch>();
  let next = 0;
  let closed: Error | null = null;

  const finish = (id: number, batch: Batch) => {
    batches.delete(id);
    clearTimeout(batch.timer);
    batch.done();
  };
  /** One message's outcome; the batch is done when the last one is in. */
  const record = (id: number, batch: Batch, index: number, outcome: number | Error) => {
    if (batch.results[index] !== undefined) return;
    batch.results[index] = outcome;
    if (--batch.waiting === 0) finish(id, batch);
  };
  /** Ends a batch now: every message still waiting gets `reason()`. */
  const settle = (id: number, batch: Batch, reason: () => Error) => {
    let error: Error | undefined;
    for (let i = 0; i < batch.results.length; i++) if (batch.results[i] === undefined) batch.results[i] = error ??= reason();
    finish(id, batch);
  };

  const sub = nc.subscribe(`${inbox}.>`, {
    callback: (err: Error | null, m: Msg) => {
      if (err) {
        for (const [id, batch] of batches)
          settle(
            id,
            batch,
            () => new FencelineError(ErrorCode.NatsUnavailable, `JetStream acknowledgements: ${err.message}`, { cause: err }),
          );
        return;
      }
      // Reply subject: <inbox>.<batch>.<index>
      const rest = m.subject.slice(inbox.length + 1);
      const dot = rest.indexOf(".");
      const id = Number(rest.slice(0, dot));
      const batch = batches.get(id);
      if (!batch) return; // timed out already
      record(id, batch, Number(rest.slice(dot + 1)), ackOf(m));
    },
  });
  void nc.closed().then(() => {
    closed = new FencelineError(ErrorCode.NatsUnavailable, "the NATS connection closed before JetStream acknowledged");
    for (const [id, batch] of batches) settle(id, batch, () => closed!);
  });

  return {
    publish(messages) {
      if (messages.length === 0) return Promise.resolve([]);
      if (closed || nc.isClosed())
        return Promise.resolve(
          messages.map(() => closed ?? new FencelineError(ErrorCode.NatsUnavailable, "the NATS connection is closed")),
        );
      const id = next++;
      return new Promise((resolve) => {
        const results: Array<number | Error | undefined> = new Array(messages.length).fill(undefined);
        const batch: Batch = {
          results,
          waiting: messages.length,
          done: () => resolve(results as Array<number | Error>),
          timer: setTimeout(
            () => settle(id, batch, () => new FencelineError(ErrorCode.Timeout, `no JetStream acknowledgement within ${timeoutMs} ms`)),
            timeoutMs,
          ),
        };
        batches.set(id, batch);
        const prefix = `${inbox}.${id}.`;
        for (let i = 0; i < messages.length; i++) {
          const { subject, data, msgID, headers: extra } = messages[i]!;
          const h = headers();
          if (msgID !== undefined) h.set("Nats-Msg-Id", msgID);
          if (extra) for (const key in extra) h.set(key, extra[key]!);
          try {
            // A string payload as a Buffer: nats.js would run it through TextEncoder, several
            // times slower than Buffer.from for the same UTF-8 bytes.
            nc.publish(subject, typeof data === "string" ? Buffer.from(data) : data, { headers: h, reply: prefix + i });
          } catch (err) {
            // A bad subject or a closed connection: this one fails, the others still count.
            record(id, batch, i, err instanceof Error ? err : new Error(String(err)));
          }
        }
      });
    },
    close() {
      closed ??= new FencelineError(ErrorCode.NatsUnavailable, "the JetStream pipeline is closed");
      for (const [id, batch] of batches) settle(id, batch, () => closed!);
      sub.unsubscribe();
    },
  };
}

/** JetStream's error code for a compare-and-set that found another last sequence on the subject. */
export const WRONG_LAST_SEQUENCE = 10071;

/** An error JetStream answered a publish with. */
export class JetStreamPublishError extends FencelineError {
  override readonly name = "JetStreamPublishError";
  constructor(
    message: string,
    /** JetStream's `err_code` (e.g. WRONG_LAST_SEQUENCE), 0 when it gave none. */
    readonly apiCode: number,
  ) {
    super(ErrorCode.Internal, message);
  }
}

/** The stream sequence of a PubAck, else the error it (or a status message, e.g. 503 no responders) reports. */
function ackOf(m: Msg): number | Error {
  if (m.data.length === 0) {
    const code = m.headers?.code ?? 0;
    if (code === 503) return new FencelineError(ErrorCode.NatsUnavailable, "no responders: the stream is not available (503)");
    return new FencelineError(ErrorCode.NatsUnavailable, `JetStream answered with status ${code} ${m.headers?.description ?? ""}`.trim());
  }
  const text = decoder.decode(m.data);
  if (!text.includes('"error"')) {
    // {"stream":"FL_AUDIT","seq":12,"duplicate":true}: read the number after "seq":
    const at = text.indexOf('"seq":');
    return at < 0 ? 0 : parseInt(text.slice(at + 6), 10) || 0;
  }
  let description = text;
  let apiCode = 0;
  try {
    const parsed = JSON.parse(text) as { error?: { code?: number; err_code?: number; description?: string } };
    if (parsed.error) {
      apiCode = parsed.error.err_code ?? 0;
      description = `${parsed.error.description ?? "error"} (${parsed.error.code ?? "?"}${apiCode ? `/${apiCode}` : ""})`;
    }
  } catch {
    // keep the raw text
  }
  return new JetStreamPublishError(`JetStream refused the message: ${description}`, apiCode);
}
