import type { KV } from "@nats-io/kv";
import { ErrorCode, FencelineError } from "@fenceline/contracts";
import type { SnapshotStore } from "../ports.js";
import type { NodeSnapshot } from "../snapshot.js";

/** FL_NODES as a SnapshotStore: the KV revision is the optimistic-concurrency token. */
export function createKvSnapshotStore(kv: KV): SnapshotStore {
  return {
    async get(node) {
      const entry = await kv.get(node);
      if (!entry || entry.operation !== "PUT") return null;
      return { snapshot: entry.json<NodeSnapshot>(), revision: entry.revision };
    },
    async put(snapshot, revision) {
      const data = JSON.stringify(snapshot);
      try {
        return revision === 0 ? await kv.create(snapshot.node, data) : await kv.update(snapshot.node, data, revision);
      } catch (err) {
        throw new FencelineError(ErrorCode.Concurrency, `snapshot of ${snapshot.node} changed under revision ${revision}`, { cause: err });
      }
    },
    async list() {
      const out: NodeSnapshot[] = [];
      const keys = await kv.keys();
      for await (const key of keys) {
        const entry = await kv.get(key);
        if (entry && entry.operation === "PUT") out.push(entry.json<NodeSnapshot>());
      }
      return out.sort((a, b) => a.node.localeCompare(b.node));
    },
  };
}
