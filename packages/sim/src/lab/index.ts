export { Prng } from "./prng.js";
export {
  SimBus,
  SimStream,
  SimConsumer,
  SimSubscription,
  SimPartitionConsumer,
  BusUnavailableError,
  type AckPolicy,
  type BusChaos,
  type Delivery,
  type StoredMessage,
  type PublishAck,
  type Unlisten,
} from "./bus.js";
export {
  LAB_POLICY,
  LAB_ACK_WAIT_MS,
  LAB_AGENT_CONFIG,
  UNFENCE_RETRY_MAX_MS,
  labNodeIp,
  convergenceBound,
  slotLimit,
  withPowerLevels,
  type ConvergenceBound,
} from "./policy.js";
export {
  LabChecker,
  LAB_INVARIANTS,
  movesWorkloads,
  outageFenceGroup,
  type LabFailure,
  type LabInvariant,
  type OutageFence,
} from "./invariants.js";
export {
  LabWorld,
  LAB_PARTITIONS,
  silentLogger,
  type LabWorldOptions,
  type EngineCrashPoint,
  type ApiMode,
  type TrailLine,
} from "./world.js";
export {
  FAULT_KINDS,
  FAULT_KINDS_BEFORE_NATS_LOSS,
  FAULT_KINDS_BEFORE_BMC,
  FAULT_KINDS_BEFORE_MEMBERSHIP,
  BMC_FAULT_KINDS,
  FAULT_DESCRIPTIONS,
  planFaults,
  injectFault,
  type LabFaultKind,
  type FaultRecord,
  type PlannedFault,
} from "./faults.js";
export { BROKEN_MACHINES, BROKEN_MACHINE_NAMES, isBrokenMachineName, type BrokenMachineName } from "./broken.js";
export {
  runSeed,
  formatTrail,
  labAgentConfigs,
  LAB_EPOCH,
  WARMUP_MS,
  FAULT_WINDOW_MS,
  type SeedOptions,
  type SeedResult,
} from "./run-seed.js";
export { runSeeds, compactResult, type CompactResult, type RunSeedsOptions } from "./parallel.js";
export {
  RECOVERY_MODELS,
  KUBERNETES_DEFAULTS,
  SNR_DEFAULTS,
  NHC_UNHEALTHY_MS,
  NhcSnrModel,
  recoveryCases,
  runRecoveryCase,
  snrPeerBatches,
  snrSafeTimeMs,
  summarize,
  percentile,
  fencelineTimeline,
  powerPolicy,
  BENCH_BMC_DEVICES,
  type RecoveryModel,
  type RecoveryCase,
  type RecoveryOutcome,
  type RecoverySummary,
} from "./recovery.js";
