import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { nodeFromToken, parseSnapshotHead } from "@fenceline/contracts";
import { openMembershipStore, type Logger } from "@fenceline/bus";
import { Buckets } from "@fenceline/streams";
import { createMembershipKeeper, peerUrlOf } from "./membership-keeper.js";

/** How long a view write waits for the FL_NODES watch to catch up before it goes ahead. */
const CATCH_UP_TIMEOUT_MS = 5_000;

/**
 * Runs the membership keeper on NATS: follows the engine's records in FL_NODES and keeps the
 * view in FL_MEMBERS equal to them (docs/agent.md, "Membership"). Writes nothing until the
 * records already stored have all been read, then a new view whenever a node joins, leaves or
 * changes its peer address. Resolves once that first sync is done.
 */
export async function runMembershipKeeper(options: { nc: NatsConnection; witness: boolean; log: Logger }) {
  const { nc } = options;
  const log = options.log.child({ component: "membership-keeper" });
  const kv = await new Kvm(nc).open(Buckets.nodes);
  /** The FL_NODES revision (stream sequence) up to which the watch below has been applied. */
  let applied = 0;
  const waiters = new Set<{ revision: number; resolve: () => void }>();
  const caughtUp = async () => {
    const last = (await kv.status()).streamInfo.state.last_seq;
    if (applied >= last) return;
    // The last message can be gone (a purge of older revisions): do not wait for ever.
    await new Promise<void>((resolve) => {
      const waiter = { revision: last, resolve: () => (clearTimeout(timer), waiters.delete(waiter), resolve()) };
      const timer = setTimeout(() => {
        log.warn({ applied, last }, "FL_NODES watch not caught up after 5 s; writing the membership view from what it has");
        waiter.resolve();
      }, CATCH_UP_TIMEOUT_MS);
      waiters.add(waiter);
    });
  };
  const keeper = createMembershipKeeper({
    store: await openMembershipStore(nc),
    witness: options.witness,
    caughtUp,
    onWritten: (view) =>
      log.info(
        { version: view.version, members: view.members.length, witness: view.witness },
        `membership view v${view.version}: ${view.members.length} members`,
      ),
  });
  const stored = (await kv.status()).values;
  let loaded = stored === 0;
  let markLoaded: () => void = () => {};
  const firstLoad = new Promise<void>((resolve) => (markLoaded = resolve));
  if (loaded) markLoaded();

  const sync = () => {
    if (!loaded) return;
    keeper.sync().catch((err: unknown) => log.warn({ err }, "cannot write the membership view; will try again on the next change"));
  };
  const watch = await kv.watch();
  const done = (async () => {
    for await (const entry of watch) {
      let changed: boolean;
      if (entry.operation !== "PUT") changed = keeper.remove(nodeFromToken(entry.key));
      else {
        const head = parseSnapshotHead(entry.value);
        if (!head) {
          log.warn({ key: entry.key, revision: entry.revision }, "ignoring a malformed FL_NODES entry");
          changed = false;
        } else {
          const url = peerUrlOf(head.context);
          changed = keeper.observe({ node: head.node, path: head.path, ...(url !== undefined ? { peerUrl: url } : {}) });
        }
      }
      applied = Math.max(applied, entry.revision);
      for (const w of waiters) if (applied >= w.revision) w.resolve();
      if (!loaded && entry.isUpdate) {
        loaded = true;
        markLoaded();
        changed = true;
      }
      if (changed) sync();
    }
  })();
  await firstLoad;
  await keeper.sync().catch((err: unknown) => log.warn({ err }, "cannot write the first membership view"));

  return {
    keeper,
    async stop() {
      for (const w of waiters) w.resolve();
      watch.stop();
      await done.catch(() => {});
    },
  };
}
