import { Kvm } from "@nats-io/kv";
import { connectNats } from "@fenceline/bus";
import { Buckets } from "@fenceline/streams";
import { createKvSnapshotStore, type NodeSnapshot } from "@fenceline/engine";
import { parse, serverUrl, table } from "../args.js";

const USAGE = `usage: fenceline nodes [--server nats://host:port] [--json]

Shows each node's lifecycle state as the engine last recorded it (KV bucket FL_NODES).`;

export async function readSnapshots(url: string): Promise<NodeSnapshot[]> {
  const nc = await connectNats(url, { name: "fenceline-cli" });
  try {
    const kv = await new Kvm(nc).open(Buckets.nodes);
    // Parsed like every message; an invalid value is named on stderr and left out.
    const store = createKvSnapshotStore(kv, nc, undefined, { onInvalid: (_key, err) => console.error(`fenceline: ${err.message}`) });
    const out = await store.list();
    return out.sort((a, b) => a.node.localeCompare(b.node, undefined, { numeric: true }));
  } finally {
    await nc.close();
  }
}

export async function nodesCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { server: { type: "string" }, json: { type: "boolean" } }, USAGE);
  if (values.help) return (console.log(USAGE), 0);
  const snapshots = await readSnapshots(serverUrl(values.server as string | undefined));
  if (values.json) {
    const rows = snapshots.map((s) => ({ node: s.node, state: s.path, since: s.context.since, epoch: s.context.epoch, bootId: s.context.bootId, lastSeq: s.lastSeq, slot: s.context.slot, reason: s.context.operatorReason ?? s.context.pausedReason ?? null }));
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return 0;
  }
  if (snapshots.length === 0) return (console.log("no nodes yet"), 0);
  console.log(
    table(
      snapshots.map((s) => [s.node, s.path, new Date(s.context.since).toISOString(), String(s.context.epoch), s.context.bootId ?? "-", s.context.operatorReason ?? s.context.pausedReason ?? ""]),
      ["NODE", "STATE", "SINCE", "EPOCH", "BOOT ID", "NOTE"],
    ),
  );
  return 0;
}
