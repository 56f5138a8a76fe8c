import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { Buckets } from "@fenceline/streams";
import type { FleetView } from "../fleet-guard.js";

/** A live count of nodes and healthy nodes, from the engine's snapshots in FL_NODES. */
export async function watchFleetView(nc: NatsConnection, options: { onSnapshot?: (node: string, epoch: number) => void; now?: () => number } = {}) {
  const now = options.now ?? Date.now;
  let majoritySince: number | null = null;
  const kv = await new Kvm(nc).open(Buckets.nodes);
  const phases = new Map<string, string>();
  const watch = await kv.watch();
  const done = (async () => {
    for await (const entry of watch) {
      if (entry.operation !== "PUT") {
        phases.delete(entry.key);
        continue;
      }

      const snap = entry.json<{ node: string; path: string; context: { epoch: number } }>();
      phases.set(snap.node, snap.path.split(".")[0]!);
      options.onSnapshot?.(snap.node, snap.context.epoch);
      const { fleetSize, healthy } = count();
      if (healthy * 2 > fleetSize) majoritySince ??= now();
      else majoritySince = null;
    }
  })();
  function count() {
    let healthy = 0;
    for (const phase of phases.values()) if (phase === "healthy") healthy += 1;
    return { fleetSize: phases.size, healthy };
  }
  return {
    view(): FleetView {
      return { ...count(), majoritySince };
    },
    async stop() {
      watch.stop();
      await done.catch(() => {});
    },
  };
}
