import { DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { ErrorCode, FencelineError } from "@fenceline/contracts";
import { JetStreamPublishError, WRONG_LAST_SEQUENCE, type JetStreamPipeline } from "@fenceline/bus";
import { Buckets } from "@fenceline/streams";
import type { SnapshotStore } from "../ports.js";
import { parseSnapshot, type NodeSnapshot } from "../snapshot.js";

/**
 * FL_NODES as a SnapshotStore: the KV revision is the optimistic-concurrency token.
 *
 * With `pipeline`, a save is a pipelined publish (no request object per save).
 *
 * With `nc`, listing reads the bucket's stream once with an ordered consumer delivering the
 * last message per key (10,000 snapshots in well under a second), instead of `kv.keys()` and
 * a get per key: `kv.keys()` was seen to stall for ~30 s while keys are being written.
 *
 * Every value read back is parsed (`parseSnapshot`). `get` throws on an invalid one (the engine
 * then retries that node's events and never overwrites it); listing leaves invalid ones out and
 * reports each to `onInvalid` (a later `get` of that node throws in turn).
 */
export function createKvSnapshotStore(
  kv: KV,
  nc?: NatsConnection,
  pipeline?: JetStreamPipeline,
  options: { onInvalid?: (key: string, err: FencelineError) => void } = {},
): SnapshotStore {
  const read = (key: string, data: Uint8Array, revision: number, out: Array<{ snapshot: NodeSnapshot; revision: number }>) => {
    try {
      out.push({ snapshot: parseSnapshot(key, data), revision });
    } catch (err) {
      options.onInvalid?.(key, err as FencelineError);
    }
  };
  const entries = async (): Promise<Array<{ snapshot: NodeSnapshot; revision: number }>> => {
    const out: Array<{ snapshot: NodeSnapshot; revision: number }> = [];
    if (nc) {
      const prefix = `$KV.${Buckets.nodes}.`;
      for (const m of await readLastPerKey(nc, Buckets.nodes)) read(m.subject.slice(prefix.length), m.data, m.seq, out);
      return out;
    }
    for await (const key of await kv.keys()) {
      const entry = await kv.get(key);
      if (entry && entry.operation === "PUT") read(key, entry.value, entry.revision, out);
    }
    return out;
  };
  return {
    async get(node) {
      const entry = await kv.get(node);
      if (!entry || entry.operation !== "PUT") return null;
      return { snapshot: parseSnapshot(node, entry.value), revision: entry.revision };
    },
    async put(snapshot, revision) {
      const data = JSON.stringify(snapshot);
      if (pipeline) {
        // The same compare-and-set as kv.create/kv.update, pipelined (see createJetStreamPipeline).
        const subject = (kv as unknown as { subjectForKey(key: string, edit: boolean): string }).subjectForKey(snapshot.node, true);
        const [ack] = await pipeline.publish([{ subject, data, headers: { "Nats-Expected-Last-Subject-Sequence": String(revision) } }]);
        if (typeof ack === "number") return ack;
        // A create over a deleted key: kv.create knows how to take it over.
        const deletedKey = revision === 0 && ack instanceof JetStreamPublishError && ack.apiCode === WRONG_LAST_SEQUENCE;
        if (!deletedKey)
          throw new FencelineError(ErrorCode.Concurrency, `snapshot of ${snapshot.node} changed under revision ${revision}`, {
            cause: ack,
          });
      }
      try {
        return revision === 0 ? await kv.create(snapshot.node, data) : await kv.update(snapshot.node, data, revision);
      } catch (err) {
        throw new FencelineError(ErrorCode.Concurrency, `snapshot of ${snapshot.node} changed under revision ${revision}`, { cause: err });
      }
    },
    async list() {
      return (await entries()).map((e) => e.snapshot).sort((a, b) => a.node.localeCompare(b.node));
    },
    entries,
  };
}

/**
 * The live value of every key of a KV bucket (deleted and purged keys left out), read with an
 * ordered consumer (deliver last per subject). Each message's `seq` is the key's revision.
 */
export async function readLastPerKey(nc: NatsConnection, bucket: string): Promise<JsMsg[]> {
  const js = jetstream(nc);
  const stream = `KV_${bucket}`;
  const { state } = await (await jetstreamManager(nc, { checkAPI: false })).streams.info(stream);
  if (state.messages === 0) return [];
  const consumer = await js.consumers.get(stream, { filter_subjects: `$KV.${bucket}.>`, deliver_policy: DeliverPolicy.LastPerSubject });
  const out: JsMsg[] = [];
  for (let done = false; !done; ) {
    const batch = await consumer.fetch({ max_messages: 5_000, expires: 5_000 });
    let got = 0;
    for await (const m of batch) {
      got += 1;
      const op = m.headers?.get("KV-Operation");
      if (op !== "DEL" && op !== "PURGE") out.push(m);
      if (m.info.pending === 0) {
        done = true;
        break;
      }
    }
    if (got === 0)
      throw new FencelineError(
        ErrorCode.Internal,
        `cannot read ${stream}: no messages within 5 s (${state.messages} messages in the stream)`,
      );
  }
  await consumer.delete().catch(() => {});
  return out;
}
