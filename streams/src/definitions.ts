import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, type ConsumerConfig, type StreamConfig } from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { ACTUATORS } from "@fenceline/contracts";
import { checkPartitions, eventPartitions } from "./partitions.js";
import { Buckets, Consumers, Streams, Subjects, eventPartitionTransform } from "./subjects.js";

/**
 * Everything Fenceline needs on a JetStream server, as data. Only the fields written here are
 * reconciled by `provisionStreams`; the server's defaults fill in the rest. FL_EVENTS's subject
 * transform needs nats-server 2.10 or newer (MIN_NATS_SERVER_VERSION is what Fenceline checks).
 */
export type StreamDefinition = Partial<StreamConfig> & { name: string; subjects: string[] };
export type ConsumerDefinition = { stream: string; config: Partial<ConsumerConfig> & { durable_name: string } };
export type BucketDefinition = { name: string; history: number; replicas: number };

export type Definitions = {
  streams: StreamDefinition[];
  consumers: ConsumerDefinition[];
  buckets: BucketDefinition[];
};

export type DefinitionOptions = {
  /** 1 on a single server, 3 on a cluster. Applies to every stream, consumer and bucket. */
  replicas?: number;
  /** Engine partitions, one durable consumer each (default: eventPartitions()). */
  partitions?: number;
  /**
   * How engine instances share the partitions: KV leases (default; plain consumers), or
   * consumer pinning, where each `engine-<p>` is a `pinned_client` consumer of the priority
   * group `engine` that the server re-pins after `pinnedTimeoutMs` without pulls from the pinned
   * instance (nats-server 2.11+; kept for the comparison in docs/scale.md).
   */
  ownership?: { kind: "leases" } | { kind: "pinned"; pinnedTimeoutMs: number };
};

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const DAY = 24 * 60 * MINUTE;

/**
 * How often a command may be delivered. Actuators retry a command that is not done yet (an
 * unreachable agent) with their own nak delay until its deadline, so no server-side backoff
 * list: nats-server would add it to those delays and push retries past the deadline.
 */
export const COMMAND_MAX_DELIVER = 200;
/** A command taken by an actuator that died is redelivered after this long. */
export const COMMAND_ACK_WAIT_MS = 30 * SECOND;
/**
 * An event delivered to an engine instance that died is redelivered after this long. The
 * instance that takes the partition over does not wait for it: it rewinds the consumer to its
 * ack floor (see packages/engine/src/nats/partition-worker.ts).
 */
export const ENGINE_ACK_WAIT_MS = 30 * SECOND;
/**
 * How many events a partition's consumer hands out before the engine acknowledges them: one
 * batch (the engine's default batch size). The instance works 16 partitions, so while one waits
 * for its next delivery the others keep it busy, and an event waits a batch, not four, between
 * arriving and being folded. At 1,000 the engine held ~16,000 delivered events in memory at full
 * load, each waiting ~0.7 s: long enough for V8 to copy each twice and promote it, which cost
 * more collecting than the deeper queue saved (docs/scale.md).
 */
export const ENGINE_MAX_ACK_PENDING = 256;

/**
 * Partition `p`'s engine consumer, what provisioning and an engine that finds it missing both
 * create. Ack policy "all": the engine acks a whole batch with its last message. The owner of a
 * partition rewinds it to its ack floor with a consumer reset.
 */
export function enginePartitionConsumer(partition: number) {
  return {
    durable_name: Consumers.enginePartition(partition),
    filter_subject: Subjects.eventPartition(partition),
    ack_policy: AckPolicy.All,
    ack_wait: nanos(ENGINE_ACK_WAIT_MS),
    max_ack_pending: ENGINE_MAX_ACK_PENDING,
  };
}

/** The priority group of the engine consumers under consumer-pinned ownership. */
export const ENGINE_PRIORITY_GROUP = "engine";

/** How many membership views FL_MEMBERS keeps (the most a KV key can). */
export const MEMBERSHIP_HISTORY = 64;

export function createDefinitions(options: DefinitionOptions = {}): Definitions {
  const replicas = options.replicas ?? 1;
  const partitions = checkPartitions(options.partitions ?? eventPartitions());
  const dedup = nanos(2 * MINUTE);

  const streams: StreamDefinition[] = [
    {
      // Publishers write fl.evt.<node>; the stream stores fl.evt.<partition>.<node>.
      name: Streams.events,
      subjects: [Subjects.eventPublished],
      subject_transform: eventPartitionTransform(partitions),
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      duplicate_window: dedup,
      allow_direct: true,
      num_replicas: replicas,
    },
    {
      name: Streams.commands,
      subjects: [Subjects.commandAll],
      retention: RetentionPolicy.Workqueue,
      // The engine publishes a batch's commands and audit records as fast batches (2.14).
      allow_batched: true,
      storage: StorageType.File,
      duplicate_window: dedup,
      num_replicas: replicas,
    },
    {
      name: Streams.audit,
      subjects: [Subjects.auditAll],
      retention: RetentionPolicy.Limits,
      allow_batched: true,
      storage: StorageType.File,
      duplicate_window: dedup,
      num_replicas: replicas,
    },
    {
      name: Streams.deadLetters,
      subjects: [Subjects.deadLetterAll],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: nanos(7 * DAY),
      num_replicas: replicas,
    },
  ];

  const consumers: ConsumerDefinition[] = [
    // One per partition.
    ...Array.from({ length: partitions }, (_, p) => ({
      stream: Streams.events,
      config: {
        ...enginePartitionConsumer(p),
        num_replicas: replicas,
        ...(options.ownership?.kind === "pinned"
          ? {
              priority_groups: [ENGINE_PRIORITY_GROUP],
              priority_policy: "pinned_client" as const,
              priority_timeout: nanos(options.ownership.pinnedTimeoutMs),
            }
          : {}),
      },
    })),
    ...ACTUATORS.map((actuator) => ({
      stream: Streams.commands,
      config: {
        durable_name: Consumers.actuator(actuator),
        filter_subject: Subjects.commandsFor(actuator),
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: nanos(COMMAND_ACK_WAIT_MS),
        max_deliver: COMMAND_MAX_DELIVER,
        num_replicas: replicas,
      },
    })),
  ];

  const buckets: BucketDefinition[] = [
    { name: Buckets.nodes, history: 1, replicas },
    { name: Buckets.fleet, history: 10, replicas },
    { name: Buckets.config, history: 5, replicas },
    { name: Buckets.leases, history: 1, replicas },
    // The fleet guard checks a silent node against every view it may still hold: the last 64
    // (the most a KV key keeps) are the ones it can check.
    { name: Buckets.members, history: MEMBERSHIP_HISTORY, replicas },
  ];

  return { streams, consumers, buckets };
}
