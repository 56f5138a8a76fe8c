import { hostname } from "node:os";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { ErrorCode, FencelineError, systemClock, type Clock, type Policy } from "@fenceline/contracts";
import { createFastBatchPublisher, createJetStreamPipeline, publishEvent, type Logger } from "@fenceline/bus";
import { Buckets, checkPartitions, eventPartitions, partitionOf } from "@fenceline/streams";
import { createEngineCore, type BatchOutcome, type EngineCore } from "../engine.js";
import { createDecider, type Decider, type FoldResult } from "../fold.js";
import { createTimerService, type TimerService } from "../timer-service.js";
import { createKvSnapshotStore } from "./kv-snapshot-store.js";
import { createJetStreamOutputs } from "./output-sink.js";
import { createLeaseManager, DEFAULT_LEASE_MS } from "./leases.js";
import { refuseMisplacedEvents } from "./misplaced-events.js";
import { checkPinnedConsumers, createPinnedOwnership, type Ownership } from "./pinned-ownership.js";
import { checkEventPartitions } from "./partition-count.js";
import { DEFAULT_BATCH_SIZE, PULL_EXPIRES_MS, PartitionWorker } from "./partition-worker.js";
import { keepFoldsToLog, trackApplied } from "../partition-loop.js";
import type { OutputSink, SnapshotStore } from "../ports.js";

export type RunningEngine = {
  core: EngineCore;
  timers: TimerService;
  instanceId: string;
  /** The partitions this instance owns now. */
  partitions(): number[];
  /** How many partitions FL_EVENTS has. */
  partitionCount: number;
  /** Renew and claim now instead of at the next round (tests). */
  rebalance(): Promise<void>;
  /** Stops every partition (finishing its batch), releases the leases. */
  stop(): Promise<void>;
};

export type EngineOptions = {
  nc: NatsConnection;
  policy: Policy;
  log: Logger;
  clock?: Clock;
  decider?: Decider;
  onApplied?: (result: FoldResult) => void;
  /**
   * This instance's name in the leases. An instance restarted with the same id takes its
   * partitions back at once (with a new id it waits for its old leases to expire); two live
   * instances must have different ids. Default: see defaultInstanceId.
   */
  instanceId?: string;
  /** Partition count; must be FL_EVENTS's (default: eventPartitions(), i.e. FENCELINE_PARTITIONS or 16). */
  partitions?: number;
  /** How long a lease lasts without renewal (default 10 s): a dead instance's partitions move after about this long. */
  leaseMs?: number;
  /**
   * How instances share the partitions: KV leases (default), or consumer pinning (nats-server
   * priority groups; the consumers must be provisioned with `ownership: "pinned"`). Pinning is
   * kept for the side-by-side comparison (`fenceline bench ownership`, docs/scale.md).
   */
  ownership?: "leases" | "pinned";
  /** Most events folded per batch and partition (default 256). */
  batchSize?: number;
  /** Called when the set of owned partitions changed (tests, logs). */
  onPartitions?: (owned: number[]) => void;
  /** Called after each batch a partition folded (benchmarks, metrics). */
  onBatch?: (outcome: BatchOutcome, partition: number, size: number) => void;
  /**
   * Wraps the engine's ports: tests use it to crash the engine between publishing its outputs,
   * saving the snapshot and acking (a wrapper that throws is a crash at that point). A wrapped
   * output sink gets the outputs themselves, not encoded.
   */
  wrap?: { outputs?: (outputs: OutputSink) => OutputSink; snapshots?: (store: SnapshotStore) => SnapshotStore };
};

let started = 0;

/**
 * FENCELINE_INSTANCE_ID, else `<host>-<pid>` (and `-<k>` for the k-th further engine of the
 * process): distinct for every live engine, and the same for a process restarted with the same
 * pid on the same host (pid 1 in a container: its restarts take their leases back at once).
 */
export function defaultInstanceId(): string {
  const k = started++;
  const id = process.env.FENCELINE_INSTANCE_ID || `${hostname() || "engine"}-${process.pid}${k > 0 ? `-${k}` : ""}`;
  return id.replace(/[^-_=a-zA-Z0-9]/g, "_").slice(0, 64);
}

/**
 * Runs the engine on NATS as one instance of possibly several: it takes its share of the
 * FL_EVENTS partitions through leases in FL_LEASES, and for each partition it owns consumes
 * `engine-<p>` in batches (PartitionWorker), keeping that partition's node snapshots (FL_NODES)
 * in memory and firing their timers. Commands go to FL_COMMANDS, audit records to FL_AUDIT.
 * A single instance simply owns every partition. Streams must already be provisioned.
 */
export async function runEngine(options: EngineOptions): Promise<RunningEngine> {
  const { nc, policy, log } = options;
  const clock = options.clock ?? systemClock;
  const partitions = checkPartitions(options.partitions ?? eventPartitions());
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const kvm = new Kvm(nc);
  const kv = await kvm.open(Buckets.nodes);
  let leasesKv;
  try {
    leasesKv = await kvm.open(Buckets.leases);
    await leasesKv.status();
  } catch (err) {
    throw new FencelineError(
      ErrorCode.Internal,
      `cannot open the ${Buckets.leases} bucket (provision the streams first): ${(err as Error).message}`,
      { cause: err },
    );
  }
  await checkEventPartitions(jsm, partitions);
  const decider = options.decider ?? createDecider(policy);
  const partitionOfNode = (node: string) => partitionOf(node, partitions);

  // Outputs go in fast batches per stream; snapshot saves are pipelined (one inbox for every
  // acknowledgement, one timer per batch).
  const pipeline = createJetStreamPipeline(nc);
  const fastBatches = createFastBatchPublisher(nc);
  const outputs = createJetStreamOutputs(pipeline, fastBatches);
  const snapshots = createKvSnapshotStore(kv, nc, pipeline, {
    onInvalid: (key, err) =>
      log.error(
        { err, key },
        `FL_NODES "${key}" is not a valid snapshot: its partition waits at its next event until the value is fixed or deleted`,
      ),
  });
  /** Partitions whose snapshots are loaded: a node of one of them that is not cached has none. */
  const loaded = new Set<number>();
  const core = createEngineCore({
    decider,
    snapshots: options.wrap?.snapshots ? options.wrap.snapshots(snapshots) : snapshots,
    outputs: options.wrap?.outputs ? options.wrap.outputs({ publish: (list) => outputs.publish(list) }) : outputs,
    assumeAbsent: (node) => loaded.has(partitionOfNode(node)),
    // Every fold for the metrics hook; otherwise only those the logs print (the others are
    // garbage once their outputs are encoded, instead of surviving until the batch is saved).
    ...(options.onApplied ? { onApplied: options.onApplied } : { keepResult: keepFoldsToLog(log) }),
  });

  const timers = createTimerService({
    clock,
    publish: async (event) => {
      // Only the owner of the node's partition fires its timers (the others do not track them).
      await publishEvent(js, event);
    },
    onError: (err) => log.warn({ err }, "cannot publish a timer event; will retry"),
  });

  const workers = new Map<number, PartitionWorker>();
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const onBatch = (p: number) => (outcome: BatchOutcome, size: number) => {
    options.onBatch?.(outcome, p, size);
    trackApplied(outcome, timers, log);
  };
  /** Partition `p`'s worker, taking batches while `valid` (the ownership's word for it). */
  const newWorker = (p: number, valid: () => boolean, pinned?: ConstructorParameters<typeof PartitionWorker>[0]["pinned"]) =>
    new PartitionWorker({
      partition: p,
      partitions,
      nc,
      js,
      jsm,
      core,
      log,
      batchSize,
      valid,
      onBatch: onBatch(p),
      ...(pinned ? { pinned } : {}),
    });
  /** Loads the snapshots of newly owned partitions (their nodes' timers armed). */
  const load = async (claimed: number[], stillOwned: (p: number) => boolean) => {
    const set = new Set(claimed);
    const started = Date.now();
    const recovered = await core.recover((node) => set.has(partitionOfNode(node)));
    for (const snapshot of recovered) timers.track(snapshot.node, snapshot.context.timers);
    for (const p of claimed) if (stillOwned(p)) loaded.add(p);
    log.info(
      { partitions: claimed, nodes: recovered.length, ms: Date.now() - started, policy: policy.version },
      "engine resumed partitions from snapshots",
    );
  };
  /** A partition that is someone else's now: no timers, no cache (reloaded if it comes back). */
  const drop = (p: number) => {
    loaded.delete(p);
    const mine = (node: string) => partitionOfNode(node) === p;
    for (const snapshot of core.snapshots()) if (mine(snapshot.node)) timers.track(snapshot.node, {});
    core.forget(mine);
  };
  const instanceId = options.instanceId ?? defaultInstanceId();
  let ownership: Ownership;

  if (options.ownership === "pinned") {
    // The pinned instance must pull well within priority_timeout, or the server re-pins.
    const pullExpiresMs = Math.max(1_000, Math.min(PULL_EXPIRES_MS, Math.floor((await checkPinnedConsumers(jsm, partitions)) / 3)));
    const pinned = createPinnedOwnership({
      instanceId,
      jsm,
      log,
      claim: (p) => load([p], (q) => pinned.owned().includes(q)),
      lose: async (p) => drop(p),
      onChange: () => options.onPartitions?.(pinned.owned()),
      workers: {
        async start() {
          for (let p = 0; p < partitions; p++) {
            workers.set(
              p,
              newWorker(p, () => pinned.valid(p), {
                pullExpiresMs,
                events: { pinned: (q) => pinned.pinned(q), unpinned: (q) => pinned.unpinned(q) },
              }),
            );
          }
          await Promise.all([...workers.values()].map((w) => w.start()));
        },
        async stop() {
          await Promise.all([...workers.values()].map((w) => w.stop()));
          workers.clear();
        },
      },
    });
    ownership = pinned;
  } else {
    const leases = createLeaseManager({
      nc,
      kv: leasesKv,
      instanceId,
      partitions,
      leaseMs: options.leaseMs ?? DEFAULT_LEASE_MS,
      log,
      async onClaim(claimed) {
        await load(claimed, (p) => leases.owned().includes(p));
        for (const p of claimed) {
          if (!leases.owned().includes(p)) continue;
          workers.set(
            p,
            newWorker(p, () => leases.valid(p)),
          );
        }
        await Promise.all(claimed.map((p) => workers.get(p)?.start()));
        options.onPartitions?.(leases.owned());
      },
      async onLose(p) {
        const worker = workers.get(p);
        workers.delete(p);
        drop(p);
        options.onPartitions?.(leases.owned());
        await worker?.stop();
        drop(p); // what the last batch applied meanwhile
      },
    });
    ownership = { ...leases, valid: (p) => leases.valid(p) };
  }

  const misplaced = refuseMisplacedEvents(nc, log);
  await ownership.start();
  timers.start();
  log.info(
    {
      instance: ownership.instanceId,
      ownership: options.ownership ?? "leases",
      partitions: ownership.owned(),
      of: partitions,
      interpreter: decider.interpreter,
    },
    "engine running",
  );

  return {
    core,
    timers,
    instanceId: ownership.instanceId,
    partitions: () => ownership.owned(),
    partitionCount: partitions,
    rebalance: () => ownership.round(),
    async stop() {
      misplaced.unsubscribe();
      timers.stop();
      await ownership.stop();
      pipeline.close();
      fastBatches.close();
    },
  };
}
