export {
  fold,
  createDecider,
  commandId,
  auditId,
  actuatorOf,
  INTERPRETER_NAMES,
  type Decider,
  type FoldResult,
  type Interpreter,
} from "./fold.js";
export { createEngineCore, type EngineCore, type ApplyOutcome, type AppliedEvent, type BatchOutcome } from "./engine.js";
export { createTimerService, timerEventId, type TimerService } from "./timer-service.js";
export { createMemorySnapshotStore, createMemoryOutputs } from "./memory.js";
export type { SnapshotStore, Output, OutputSink, EventSink } from "./ports.js";
export { NodeSnapshotSchema, parseSnapshot, type NodeSnapshot } from "./snapshot.js";
export { runEngine, defaultInstanceId, type RunningEngine, type EngineOptions } from "./nats/run-engine.js";
export { ENGINE_NODE_FLAGS, missingEngineNodeFlags } from "./node-flags.js";
export { createKvSnapshotStore, readLastPerKey } from "./nats/kv-snapshot-store.js";
export { createJetStreamOutputs, type JetStreamOutput } from "./nats/output-sink.js";
export {
  createLeaseManager,
  checkInstanceId,
  leaseKey,
  instanceKey,
  DEFAULT_LEASE_MS,
  type LeaseManager,
  type LeaseValue,
  type InstanceValue,
} from "./nats/leases.js";
export { PartitionWorker, jetStreamPartitionConsumer } from "./nats/partition-worker.js";
export { checkEventPartitions } from "./nats/partition-count.js";
export { refuseMisplacedEvents, misplacedReason, MISPLACED_EVENTS_QUEUE } from "./nats/misplaced-events.js";
export {
  createPartitionLoop,
  trackApplied,
  DEFAULT_BATCH_SIZE,
  type PartitionLoop,
  type PartitionLoopOptions,
  type PartitionConsumer,
  type EventSubscription,
  type EventMessage,
} from "./partition-loop.js";
export {
  replay,
  createReplayer,
  compareRecords,
  digestOf,
  type Replayer,
  type ReplayEvent,
  type ReplayOptions,
  type ReplayReport,
  type Divergence,
  type DivergenceKind,
  type DeciderResolver,
  type TransitionDigest,
  type NodeStateAt,
  type CommandResultSeen,
} from "./replay.js";
export { createFencelineMetrics, PROMETHEUS_CONTENT_TYPE, type FencelineMetrics, type FleetStatus, type SnapshotState } from "./metrics.js";
export {
  watchMetrics,
  watchNodeStates,
  serveMetrics,
  startMetricsEndpoint,
  trackConnection,
  type MetricsWatch,
  type MetricsServer,
  type MetricsEndpoint,
} from "./metrics-nats.js";
