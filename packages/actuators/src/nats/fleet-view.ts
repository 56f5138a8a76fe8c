import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { nodeFromToken, parseSnapshotHead } from "@fenceline/contracts";
import { Buckets, Subjects } from "@fenceline/streams";
import type { FleetView } from "../fleet-guard.js";
import { createFleetTracker } from "../fleet-tracker.js";

/**
 * The fleet guard's live view: node states from the engine's snapshots in FL_NODES, liveness
 * from the heartbeats themselves (core NATS `fl.hb.*`), sampled every `sampleMs`.
 */
export async function watchFleetView(
  nc: NatsConnection,
  options: { heartbeatTimeoutMs: number; minDipMs?: number; onSnapshot?: (node: string, epoch: number) => void; now?: () => number; sampleMs?: number },
) {
  const tracker = createFleetTracker({ now: options.now ?? Date.now, heartbeatTimeoutMs: options.heartbeatTimeoutMs, ...(options.minDipMs !== undefined ? { minDipMs: options.minDipMs } : {}) });
  const kv = await new Kvm(nc).open(Buckets.nodes);
  const watch = await kv.watch();
  const done = (async () => {
    for await (const entry of watch) {
      if (entry.operation !== "PUT") {
        tracker.onDeleted(entry.key);
        continue;
      }
      // A malformed entry is skipped (see parseSnapshotHead).
      const snap = parseSnapshotHead(entry.value);
      if (!snap) continue;
      tracker.onSnapshot(snap.node, snap.path.split(".")[0]!);
      options.onSnapshot?.(snap.node, snap.context.epoch);
    }
  })();
  // Only the subject matters here (who is heartbeating); the detector validates the payloads.
  const heartbeats = nc.subscribe(Subjects.heartbeatAll, {
    callback: (err, msg) => {
      if (!err) tracker.onHeartbeat(nodeFromToken(msg.subject.split(".")[2] ?? ""));
    },
  });
  const sampler = setInterval(() => tracker.sample(), options.sampleMs ?? 100);
  return {
    view(): FleetView {
      return tracker.view();
    },
    async stop() {
      clearInterval(sampler);
      heartbeats.unsubscribe();
      watch.stop();
      await done.catch(() => {});
    },
  };
}
