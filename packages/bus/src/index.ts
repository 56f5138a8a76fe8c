export { createLogger, type Logger } from "./logger.js";
export { connectNats, natsConnectionOptions, redactUrl, type ConnectOptions } from "./connect.js";
export {
  startNatsServer,
  natsServerBinary,
  type NatsServer,
  type NatsServerOptions,
  type ClusterOptions,
} from "./nats-server.js";
export { startNatsCluster, type NatsCluster } from "./nats-cluster.js";
export {
  publishEvent,
  publishCommand,
  publishAudit,
  publishDeadLetter,
  commandMessage,
  auditMessage,
  type DeadLetterOptions,
} from "./publish.js";
export { createFastBatchPublisher, type FastBatchPublisher } from "./fast-batch.js";
export {
  createJetStreamPipeline,
  DEFAULT_PIPELINE_TIMEOUT_MS,
  JetStreamPublishError,
  WRONG_LAST_SEQUENCE,
  type JetStreamPipeline,
  type StreamMessage,
} from "./pipeline.js";
export {
  createSettler,
  createDispatcher,
  defaultNakDelay,
  lastSubjectToken,
  type ConsumedMessage,
  type DeadLetterSink,
  type Dispatcher,
  type SettleOptions,
} from "./consume-loop.js";
export {
  consumeValidated,
  jetStreamDeadLetters,
  type ConsumeValidatedOptions,
  type ValidatedConsumer,
  type MessageSchema,
  type SchemaOutput,
} from "./consume.js";
export { MEMBERSHIP_KEY, createKvMembershipStore, openMembershipStore, watchMembership, type MembershipWatch } from "./membership.js";
