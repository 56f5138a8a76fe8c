import { JetStreamApiCodes, JetStreamApiError, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { ErrorCode, FencelineError } from "@fenceline/contracts";
import {
  createDefinitions,
  type BucketDefinition,
  type ConsumerDefinition,
  type DefinitionOptions,
  type Definitions,
  type StreamDefinition,
} from "./definitions.js";
import { Streams, partitionsOfTransform } from "./subjects.js";
import { ClusterNotReadyError, createClusterWait } from "./cluster-ready.js";

export type ProvisionReport = { created: string[]; updated: string[]; unchanged: string[] };

/** The part of a pino logger provisioning uses. */
export type ProvisionLogger = { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };

export type ProvisionOptions = {
  /** Replicas of every stream, consumer and bucket (default 1; `fittingReplicas` fits them to the cluster). */
  replicas?: number;
  /** Engine partitions (default: eventPartitions()). */
  partitions?: number;
  /** How engine instances share partitions (see DefinitionOptions). */
  ownership?: DefinitionOptions["ownership"];
  log?: ProvisionLogger;
  /**
   * How long to wait for a JetStream cluster that cannot answer or place yet (forming: its meta
   * leader being elected, a server not yet online) before failing; default 60 s. See clusterNotReady.
   */
  clusterWaitMs?: number;
  /** Defaults to `createDefinitions({ replicas })`. */
  definitions?: Definitions;
};

type Outcome = "created" | "updated" | "unchanged";

/**
 * Makes the server match the definitions: creates what is missing, updates what differs (only
 * the declared fields are compared) and leaves the rest alone. Safe to run on every start.
 * Names in the report are `stream:<name>`, `consumer:<stream>/<durable>` and `bucket:<name>`.
 */
export async function provisionStreams(nc: NatsConnection, options: ProvisionOptions = {}): Promise<ProvisionReport> {
  const definitions =
    options.definitions ??
    createDefinitions({
      replicas: options.replicas ?? 1,
      ...(options.partitions ? { partitions: options.partitions } : {}),
      ...(options.ownership ? { ownership: options.ownership } : {}),
    });
  const whenReady = createClusterWait({
    ...(options.clusterWaitMs !== undefined ? { waitMs: options.clusterWaitMs } : {}),
    ...(options.log ? { log: options.log } : {}),
  });
  let jsm: JetStreamManager;
  try {
    jsm = await whenReady("JetStream", () => jetstreamManager(nc));
  } catch (err) {
    throw new FencelineError(ErrorCode.NatsUnavailable, `cannot provision the streams: ${(err as Error).message}`, { cause: err });
  }
  const report: ProvisionReport = { created: [], updated: [], unchanged: [] };
  const reconcile = async (name: string, run: () => Promise<{ outcome: Outcome; changed?: string[] }>) => {
    let result;
    try {
      result = await whenReady(name, run);
    } catch (err) {
      const code = err instanceof ClusterNotReadyError ? ErrorCode.NatsUnavailable : ErrorCode.Internal;
      throw new FencelineError(code, `cannot provision ${name}: ${(err as Error).message}`, { cause: err });
    }
    report[result.outcome].push(name);
    if (result.outcome !== "unchanged") {
      options.log?.info({ name, outcome: result.outcome, changed: result.changed }, `${name} ${result.outcome}`);
    }
  };

  for (const def of definitions.streams) {
    await reconcile(`stream:${def.name}`, () => reconcileStream(jsm, def));
  }
  for (const def of definitions.consumers) {
    await reconcile(`consumer:${def.stream}/${def.config.durable_name}`, () => reconcileConsumer(jsm, def));
  }
  const kvm = new Kvm(nc);
  for (const def of definitions.buckets) {
    await reconcile(`bucket:${def.name}`, () => reconcileBucket(jsm, kvm, def));
  }
  return report;
}

async function reconcileStream(jsm: JetStreamManager, def: StreamDefinition) {
  const current = await orMissing(jsm.streams.info(def.name));
  if (!current) {
    await jsm.streams.add(def);
    return { outcome: "created" as const };
  }
  checkPartitionCount(def, current.config);
  const changed = differences(def, current.config);
  if (changed.length === 0) return { outcome: "unchanged" as const };
  const { name: _name, ...update } = def;
  await jsm.streams.update(def.name, update);
  return { outcome: "updated" as const, changed };
}

async function reconcileConsumer(jsm: JetStreamManager, def: ConsumerDefinition) {
  const { stream, config } = def;
  const current = await orMissing(jsm.consumers.info(stream, config.durable_name));
  if (!current) {
    await jsm.consumers.add(stream, config);
    return { outcome: "created" as const };
  }
  // With a backoff list the server replaces ack_wait by backoff[0]; backoff is what we compare.
  const declared = config.backoff ? { ...config, ack_wait: undefined } : config;
  const changed = differences(declared, current.config);
  if (changed.length === 0) return { outcome: "unchanged" as const };
  const { durable_name, ...update } = config;
  await jsm.consumers.update(stream, durable_name, update);
  return { outcome: "updated" as const, changed };
}

async function reconcileBucket(jsm: JetStreamManager, kvm: Kvm, def: BucketDefinition) {
  const stream = `KV_${def.name}`;
  const current = await orMissing(jsm.streams.info(stream));
  if (!current) {
    await kvm.create(def.name, { history: def.history, replicas: def.replicas });
    return { outcome: "created" as const };
  }
  const declared = { max_msgs_per_subject: def.history, num_replicas: def.replicas };
  const changed = differences(declared, current.config);
  if (changed.length === 0) return { outcome: "unchanged" as const };
  await jsm.streams.update(stream, declared);
  return { outcome: "updated" as const, changed };
}

/**
 * The replica count that fits the JetStream deployment `nc` is connected to: 1 on a single
 * server, 3 on a cluster. Never less than what FL_EVENTS already has. Not the number of servers
 * the cluster advertises (`connect_urls`): that counts only the servers up when asked, so a
 * process started while one server of three was still starting (a fresh install can race it) fitted 2
 * and kept R2 streams, which stop when either of their two servers does. A real cluster of two
 * has no JetStream quorum to lose a server from anyway; it needs `replicas` given (1 or 2).
 */
export async function fittingReplicas(nc: NatsConnection): Promise<number> {
  const fitted = nc.info?.cluster ? 3 : 1;
  const jsm = await jetstreamManager(nc, { checkAPI: false });
  const existing = await orMissing(jsm.streams.info(Streams.events)).catch(() => null);
  return Math.max(fitted, existing?.config.num_replicas ?? 1);
}

/**
 * The partition count is written into FL_EVENTS's subject transform when the stream is created.
 * Changing it would move nodes to other partitions while events of theirs may still wait in
 * their old partition's consumer, so provisioning refuses (docs/scale.md, "Changing the count").
 */
function checkPartitionCount(def: StreamDefinition, current: { subject_transform?: { src?: string; dest?: string } }): void {
  const declared = partitionsOfTransform(def.subject_transform);
  const existing = partitionsOfTransform(current.subject_transform);
  if (declared === null || existing === null || declared === existing) return;
  throw new FencelineError(
    ErrorCode.InvalidMessage,
    `${def.name} is split into ${existing} partitions, this process uses ${declared}: set FENCELINE_PARTITIONS=${existing} (or leave it unset when it is 16); ` +
      "changing the count of an existing deployment is described in docs/scale.md",
  );
}

/** Keys of `declared` (with a defined value) whose value differs from `actual`'s. */
function differences(declared: object, actual: object): string[] {
  const have = actual as Record<string, unknown>;
  return Object.entries(declared)
    .filter(([key, value]) => value !== undefined && JSON.stringify(value) !== JSON.stringify(have[key]))
    .map(([key]) => key);
}

async function orMissing<T>(info: Promise<T>): Promise<T | null> {
  try {
    return await info;
  } catch (err) {
    const notFound =
      err instanceof JetStreamApiError &&
      (err.code === JetStreamApiCodes.StreamNotFound || err.code === JetStreamApiCodes.ConsumerNotFound);
    if (notFound) return null;
    throw err;
  }
}
