import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import type { FencelineError } from "@fenceline/contracts";
import { createKvSnapshotStore, type NodeSnapshot } from "@fenceline/engine";
import { Buckets } from "@fenceline/streams";

export type ReadSnapshotsOptions = {
  /** Told of each value that does not parse as a snapshot; it is left out of the answer. */
  onInvalid?: (node: string, err: FencelineError) => void;
};

// One collator for every comparison: localeCompare with options builds one per call (most of
// the time of sorting 10,000 names).
const names = new Intl.Collator(undefined, { numeric: true });
const byNodeName = (a: NodeSnapshot, b: NodeSnapshot) => names.compare(a.node, b.node);

/**
 * Every node's snapshot in FL_NODES as the engine last saved it, sorted by node name (node-2
 * before node-10). One ordered consumer delivers the last value per key (`readLastPerKey`):
 * not `kv.keys()` and a get per key, which is ten times slower at 10,000 nodes and was seen to
 * stall while keys are written. Every value is parsed like every message.
 */
export async function readNodeSnapshots(nc: NatsConnection, options: ReadSnapshotsOptions = {}): Promise<NodeSnapshot[]> {
  const kv = await new Kvm(nc).open(Buckets.nodes);
  const store = createKvSnapshotStore(kv, nc, undefined, options.onInvalid ? { onInvalid: options.onInvalid } : {});
  // entries() leaves the order to us (list() would sort once more, by plain comparison).
  const entries = await store.entries!();
  return entries.map((e) => e.snapshot).sort(byNodeName);
}
