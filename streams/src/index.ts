export {
  Subjects,
  Streams,
  Buckets,
  Consumers,
  parseEventSubject,
  eventPartitionTransform,
  partitionsOfTransform,
  agentInboxPrefix,
} from "./subjects.js";
export { DEFAULT_PARTITIONS, MAX_PARTITIONS, eventPartitions, checkPartitions, partitionOf, fnv1a } from "./partitions.js";
export {
  createDefinitions,
  COMMAND_ACK_WAIT_MS,
  COMMAND_MAX_DELIVER,
  ENGINE_ACK_WAIT_MS,
  ENGINE_MAX_ACK_PENDING,
  enginePartitionConsumer,
  ENGINE_PRIORITY_GROUP,
  MEMBERSHIP_HISTORY,
  type Definitions,
  type DefinitionOptions,
  type StreamDefinition,
  type ConsumerDefinition,
  type BucketDefinition,
} from "./definitions.js";
export { provisionStreams, fittingReplicas, type ProvisionOptions, type ProvisionReport, type ProvisionLogger } from "./provision.js";
export { clusterNotReady, createClusterWait, ClusterNotReadyError, type ClusterWait } from "./cluster-ready.js";
export {
  ROLES,
  AGENT_USER_PREFIX,
  SERF_INBOX_PREFIX,
  agentUser,
  agentPermissions,
  rolePermissions,
  fencelineUsers,
  renderNatsConfig,
  quote,
  userUrl,
  type Role,
  type Permissions,
  type SubjectPermission,
  type UserAuth,
  type NatsUser,
  type TlsConfig,
  type NatsConfigOptions,
} from "./nats-config.js";
