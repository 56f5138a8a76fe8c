import type { JetStreamManager } from "@nats-io/jetstream";
import type { Logger } from "@fenceline/bus";
import { Consumers, ENGINE_PRIORITY_GROUP, Streams } from "@fenceline/streams";
import { ErrorCode, FencelineError } from "@fenceline/contracts";

/** What the engine needs of an ownership mechanism (KV leases, or consumer pinning). */
export type Ownership = {
  readonly instanceId: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  owned(): number[];
  /** True while the partition is this instance's and ready (its snapshots loaded): batches may run. */
  valid(partition: number): boolean;
  /** One renew/claim round (leases; a no-op for pinning). */
  round(): Promise<void>;
};

/**
 * Partition ownership by the server (nats-server 2.11+): each `engine-<p>` consumer has the
 * priority group `engine` with `priority_policy: pinned_client`; every instance pulls every
 * partition (PartitionWorker with `pinned`), and the partition is the instance's while the
 * server delivers to its pulls. This object only keeps the books: `pinned`/`unpinned` come from
 * the workers; `claim` loads the partition's snapshots and timers, `lose` drops them. On stop the
 * pins are released at once (`unpin`) so that another instance takes over without waiting for
 * `priority_timeout`.
 *
 * What the server does not do, and leases do: spread partitions over instances (the first
 * instance to pull gets every pin), and give an idle partition an owner (a pin is assigned with
 * a delivery, so a partition without new events has none, and its nodes' timers nobody fires).
 * See docs/scale.md, "Partition ownership: leases or pinned consumers".
 */
export function createPinnedOwnership(options: {
  instanceId: string;
  jsm: JetStreamManager;
  log: Logger;
  claim: (partition: number) => Promise<void>;
  lose: (partition: number) => Promise<void>;
  /** Starts the workers (all partitions) and stops them. */
  workers: { start(): Promise<void>; stop(): Promise<void> };
  onChange?: () => void;
}): Ownership & { pinned(partition: number): void; unpinned(partition: number): void } {
  const { log } = options;
  const owned = new Set<number>();
  const ready = new Set<number>();
  return {
    instanceId: options.instanceId,
    async start() {
      await options.workers.start();
    },
    async stop() {
      const mine = [...owned];
      await options.workers.stop();
      await Promise.all(
        mine.map((p) => options.jsm.consumers.unpin(Streams.events, Consumers.enginePartition(p), ENGINE_PRIORITY_GROUP).catch(() => {})),
      );
      for (const p of mine) await options.lose(p);
      owned.clear();
      ready.clear();
    },
    owned: () => [...owned].sort((a, b) => a - b),
    valid: (p) => ready.has(p),
    round: async () => {},
    pinned(p) {
      if (owned.has(p)) return;
      owned.add(p);
      options.onChange?.();
      // Loading the snapshots may fail while a cluster elects leaders: retried while still pinned.
      void (async () => {
        for (let attempt = 1; owned.has(p); attempt++) {
          try {
            await options.claim(p);
            if (owned.has(p)) ready.add(p);
            return;
          } catch (err) {
            log.warn({ err, partition: p, attempt }, `partition ${p}: cannot load its snapshots; will retry`);
            await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 100 * 2 ** attempt)));
          }
        }
      })();
    },
    unpinned(p) {
      if (!owned.delete(p)) return;
      ready.delete(p);
      options.onChange?.();
      void options.lose(p).catch((err: unknown) => log.error({ err, partition: p }, `partition ${p}: cannot drop it`));
    },
  };
}

/**
 * Consumer-pinned ownership needs the engine consumers to be pinned_client consumers of the
 * group `engine`. Returns their shortest priority_timeout, in ms.
 */
export async function checkPinnedConsumers(jsm: JetStreamManager, partitions: number): Promise<number> {
  let timeoutMs = Number.POSITIVE_INFINITY;
  for (let p = 0; p < partitions; p++) {
    const { config } = await jsm.consumers.info(Streams.events, Consumers.enginePartition(p));
    if (config.priority_policy !== "pinned_client" || !config.priority_groups?.includes(ENGINE_PRIORITY_GROUP)) {
      throw new FencelineError(
        ErrorCode.InvalidMessage,
        `consumer ${Consumers.enginePartition(p)} is not a pinned_client consumer of the group "${ENGINE_PRIORITY_GROUP}": provision the streams with ownership "pinned"`,
      );
    }
    timeoutMs = Math.min(timeoutMs, (config.priority_timeout ?? 120_000_000_000) / 1_000_000);
  }
  return timeoutMs;
}
