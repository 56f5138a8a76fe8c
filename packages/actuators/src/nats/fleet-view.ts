import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { Heartbeat, nodeFromToken, parseMessage, parseSnapshotHead } from "@fenceline/contracts";
import { openMembershipStore, watchMembership, type Logger } from "@fenceline/bus";
import { Buckets, Subjects } from "@fenceline/streams";
import type { FleetView } from "../fleet-guard.js";
import { createFleetTracker } from "../fleet-tracker.js";

/**
 * The fleet guard's live view: node states from the engine's snapshots in FL_NODES, liveness
 * from the heartbeats themselves (core NATS `fl.hb.*`), the membership views from FL_MEMBERS,
 * sampled every `sampleMs`.
 */
export async function watchFleetView(
  nc: NatsConnection,
  options: {
    heartbeatTimeoutMs: number;
    minDipMs?: number;
    onSnapshot?: (node: string, epoch: number) => void;
    now?: () => number;
    sampleMs?: number;
    log: Logger;
  },
) {
  const tracker = createFleetTracker({
    now: options.now ?? Date.now,
    heartbeatTimeoutMs: options.heartbeatTimeoutMs,
    ...(options.minDipMs !== undefined ? { minDipMs: options.minDipMs } : {}),
  });
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
      tracker.onSnapshot(snap.node, snap.path.split(".")[0]!, typeof snap.context.bootId === "string");
      options.onSnapshot?.(snap.node, snap.context.epoch);
    }
  })();
  // Who is heartbeating (the subject) and which membership view it reports holding; the
  // detector validates the payloads and dead-letters bad ones.
  const heartbeats = nc.subscribe(Subjects.heartbeatAll, {
    callback: (err, msg) => {
      if (err) return;
      const parsed = parseMessage(Heartbeat, msg.data);
      tracker.onHeartbeat(nodeFromToken(msg.subject.split(".")[2] ?? ""), parsed.ok ? parsed.value.contract?.membershipVersion : undefined);
    },
  });
  const membership = await watchMembership(nc, { log: options.log, onView: (view) => tracker.onMembership(view) });
  // Views that arrive as history (older than the newest) are not "newer": feed every one kept.
  await membership.ready;
  for (const version of membership.versions()) tracker.onMembership(membership.view(version)!);
  const store = await openMembershipStore(nc);
  const sampler = setInterval(() => tracker.sample(), options.sampleMs ?? 100);
  return {
    view(): FleetView {
      return tracker.view();
    },
    viewFloor: (node: string) => tracker.viewFloor(node),
    /** The newest membership version written (read from FL_MEMBERS now, not from the watch). */
    async latestMembershipVersion(): Promise<number> {
      return (await store.read()).view?.version ?? 0;
    },
    async stop() {
      clearInterval(sampler);
      heartbeats.unsubscribe();
      watch.stop();
      await membership.stop();
      await done.catch(() => {});
    },
  };
}
