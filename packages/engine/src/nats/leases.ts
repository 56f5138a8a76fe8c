import { randomUUID } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import type { KV, KvEntry } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { EngineInstance, ErrorCode, FencelineError, PartitionLease, parseMessage } from "@fenceline/contracts";
import type { Logger } from "@fenceline/bus";
import { Buckets, fnv1a } from "@fenceline/streams";

/** What a partition lease (`p<k>` in FL_LEASES) holds. An empty owner is a released lease. */
export type LeaseValue = PartitionLease;
/** What an instance announces (`i.<id>`): it counts as live until expiresAt. */
export type InstanceValue = EngineInstance;

export const DEFAULT_LEASE_MS = 10_000;

export const leaseKey = (partition: number) => `p${partition}`;
export const instanceKey = (id: string) => `i.${id}`;

/** KV keys allow [-/_=.a-zA-Z0-9]; an instance id is made of those. */
export function checkInstanceId(id: string): string {
  if (!/^[-_=a-zA-Z0-9]{1,64}$/.test(id)) {
    throw new FencelineError(
      ErrorCode.InvalidMessage,
      `instance id must be 1–64 letters, digits, '-', '_' or '=', got ${JSON.stringify(id)}`,
    );
  }
  return id;
}

export type LeaseManager = {
  readonly instanceId: string;
  readonly incarnation: string;
  /** Announces the instance, takes its share of partitions and starts them; then renews every leaseMs/3. */
  start(): Promise<void>;
  /** Stops renewing, stops every partition and releases its lease, withdraws the instance. */
  stop(): Promise<void>;
  owned(): number[];
  /** True while the partition's lease is ours and comfortably within its lease time. */
  valid(partition: number): boolean;
  /** One renew/claim round (tests call it to hurry). */
  round(): Promise<void>;
};

/**
 * Partition leases in FL_LEASES, every write a compare-and-set on the key's revision.
 *
 * Each round (every leaseMs/3) an instance (1) renews its instance key and its leases — a
 * renewal that fails because the revision moved means someone else took the partition: it is
 * stopped at once; (2) counts the live instances (instance keys not expired) and aims for
 * ceil(P / live) partitions: it releases the excess (stopping the partition first) and claims
 * free, released or expired ones up to that number, preferring its own partitions by
 * rendezvous hashing so that instances starting together rarely compete for the same key.
 *
 * When an instance dies, its leases expire within leaseMs of its last renewal and the others
 * claim them at their next round: a partition moves within leaseMs + leaseMs/3. Expiry times
 * are wall-clock times written by the owner, so the instances' clocks must agree to well
 * within the lease time (NTP). An instance stops working on a partition 20% of the lease time
 * before its lease would expire unrenewed, and the snapshot compare-and-set is the second line
 * of defence: two instances that both believe they own a node cannot both save its snapshot.
 *
 * An instance restarted with the same id takes its leases back at once (they are its own).
 * Should two live processes share an id, the first to lose a lease to the other one stops
 * taking leases of its id that have not expired, and says so.
 */
export function createLeaseManager(options: {
  nc: NatsConnection;
  kv: KV;
  instanceId: string;
  partitions: number;
  leaseMs?: number;
  log: Logger;
  /** Newly claimed partitions: start them. Awaited on the first round only. */
  onClaim: (partitions: number[]) => Promise<void>;
  /** A partition that is no longer ours (lost, or released): stop it; awaited before a release is written. */
  onLose: (partition: number, reason: "lost" | "released") => Promise<void>;
  now?: () => number;
}): LeaseManager {
  const { kv, partitions, log } = options;
  const instanceId = checkInstanceId(options.instanceId);
  const incarnation = randomUUID();
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const now = options.now ?? Date.now;
  const owned = new Map<number, { revision: number; validUntil: number }>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running = false;
  let inRound: Promise<void> | undefined;
  let twin = false;
  const starting = new Set<Promise<void>>();

  const rank = (p: number) => fnv1a(`${instanceId}/${p}`);
  const value = (at: number): string => JSON.stringify({ owner: instanceId, incarnation, expiresAt: at + leaseMs } satisfies LeaseValue);
  /**
   * A lease or instance value, parsed like every message; an invalid one counts as absent (a
   * lease nobody validly holds may be claimed: the claim is a compare-and-set on its revision).
   */
  const parse = <T>(schema: typeof PartitionLease | typeof EngineInstance, entry: KvEntry | null): T | null => {
    if (!entry || entry.operation !== "PUT") return null;
    const parsed = parseMessage(schema, entry.value);
    if (parsed.ok) return parsed.value as T;
    log.warn({ key: entry.key, reason: parsed.reason, error: parsed.error }, `FL_LEASES "${entry.key}" is not valid: taken as absent`);
    return null;
  };

  async function liveInstances(at: number): Promise<number> {
    const jsm = await jetstreamManager(options.nc, { checkAPI: false });
    const prefix = `$KV.${Buckets.leases}.`;
    const info = await jsm.streams.info(`KV_${Buckets.leases}`, { subjects_filter: `${prefix}i.>` });
    const keys = Object.keys(info.state.subjects ?? {}).map((s) => s.slice(prefix.length));
    const values = await Promise.all(keys.map(async (k) => parse<InstanceValue>(EngineInstance, await kv.get(k))));
    const live = values.filter((v) => v && v.expiresAt > at && v.id !== instanceId).length;
    return live + 1;
  }

  function lose(partition: number, why: string) {
    if (!owned.delete(partition)) return;
    log.warn({ partition, why }, `partition ${partition} lost: ${why}`);
    options.onLose(partition, "lost").catch((err) => log.error({ err, partition }, "cannot stop a lost partition"));
  }

  async function release(partition: number) {
    const own = owned.get(partition);
    if (!own) return;
    owned.delete(partition);
    await options.onLose(partition, "released");
    const released: LeaseValue = { owner: "", incarnation: "", expiresAt: 0 };
    await kv.update(leaseKey(partition), JSON.stringify(released), own.revision).catch(() => {});
    log.info({ partition }, `partition ${partition} released`);
  }

  async function doRound(first: boolean) {
    const at = now();
    await kv.put(instanceKey(instanceId), JSON.stringify({ id: instanceId, incarnation, expiresAt: at + leaseMs } satisfies InstanceValue));
    const [live, entries] = await Promise.all([
      liveInstances(at),
      Promise.all(Array.from({ length: partitions }, (_, p) => kv.get(leaseKey(p)))),
    ]);

    // 1. Renew what we own; a lease whose revision moved is someone else's now.
    await Promise.all(
      [...owned].map(async ([p, own]) => {
        const entry = entries[p];
        if (!entry || entry.revision !== own.revision) {
          const holder = parse<LeaseValue>(PartitionLease, entry ?? null);
          if (holder && holder.owner === instanceId && holder.incarnation !== incarnation && !twin) {
            twin = true;
            log.error(
              { instanceId, other: holder.incarnation },
              `another live process runs with instance id "${instanceId}": give each engine instance its own id`,
            );
          }
          lose(p, holder?.owner ? `taken by ${holder.owner}` : "released by someone else");
          return;
        }
        try {
          const revision = await kv.update(leaseKey(p), value(at), own.revision);
          if (owned.get(p) === own) owned.set(p, { revision, validUntil: at + leaseMs });
        } catch (err) {
          if (now() >= own.validUntil) lose(p, `cannot renew: ${(err as Error).message}`);
          else log.warn({ err, partition: p }, "cannot renew a lease; will retry");
        }
      }),
    );
    for (const [p, own] of owned) if (now() >= own.validUntil) lose(p, "expired");

    // 2. Our share.
    const target = Math.ceil(partitions / live);
    if (owned.size > target) {
      const excess = [...owned.keys()].sort((a, b) => rank(a) - rank(b)).slice(0, owned.size - target);
      for (const p of excess) await release(p);
    }
    if (owned.size >= target || !running) return;
    const claimable = (p: number) => {
      if (owned.has(p)) return false;
      const entry = entries[p];
      const holder = parse<LeaseValue>(PartitionLease, entry ?? null);
      if (!holder || holder.owner === "" || holder.expiresAt <= at) return true;
      // Our own id from an earlier run (we restarted): ours again at once, unless a twin lives.
      return holder.owner === instanceId && holder.incarnation !== incarnation && !twin;
    };
    const wanted = Array.from({ length: partitions }, (_, p) => p)
      .filter(claimable)
      .sort((a, b) => rank(b) - rank(a))
      .slice(0, target - owned.size);
    const claimed: number[] = [];
    await Promise.all(
      wanted.map(async (p) => {
        const entry = entries[p];
        try {
          const revision = entry ? await kv.update(leaseKey(p), value(at), entry.revision) : await kv.create(leaseKey(p), value(at));
          owned.set(p, { revision, validUntil: at + leaseMs });
          claimed.push(p);
        } catch {
          // Someone was quicker.
        }
      }),
    );
    if (claimed.length === 0) return;
    claimed.sort((a, b) => a - b);
    log.info({ partitions: claimed, live, target }, `claimed partitions ${claimed.join(", ")}`);
    const started = options.onClaim(claimed).catch((err) => {
      log.error({ err, partitions: claimed }, "cannot start claimed partitions; releasing them");
      return Promise.all(claimed.map((p) => release(p))).then(() => {});
    });
    if (first) await started;
    else {
      starting.add(started);
      void started.finally(() => starting.delete(started));
    }
  }

  const round = (first = false): Promise<void> => {
    inRound ??= doRound(first).finally(() => {
      inRound = undefined;
    });
    return inRound;
  };

  function schedule() {
    if (!running) return;
    timer = setTimeout(
      () => {
        round()
          .catch((err) => {
            log.warn({ err }, "lease round failed; will retry");
            for (const [p, own] of owned) if (now() >= own.validUntil) lose(p, "expired (cannot renew)");
          })
          .finally(schedule);
      },
      Math.max(50, Math.floor(leaseMs / 3)),
    );
  }

  return {
    instanceId,
    incarnation,
    async start() {
      running = true;
      await round(true);
      schedule();
    },
    async stop() {
      running = false;
      if (timer) clearTimeout(timer);
      await inRound?.catch(() => {});
      await Promise.allSettled([...starting]);
      await Promise.all([...owned.keys()].map((p) => release(p)));
      await kv.delete(instanceKey(instanceId)).catch(() => {});
    },
    owned: () => [...owned.keys()].sort((a, b) => a - b),
    valid(partition) {
      const own = owned.get(partition);
      return own !== undefined && now() < own.validUntil - leaseMs / 5;
    },
    round: () => round(),
  };
}
