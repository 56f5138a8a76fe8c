export { ErrorCode, FencelineError, isFencelineError } from "./errors.js";
export { NodeName, nodeToken, nodeFromToken } from "./names.js";
export { Duration, formatMs } from "./duration.js";
export {
  EVENT_VERSION,
  NodeEvent,
  NODE_EVENT_TYPES,
  createEvent,
  NodeJoined,
  HeartbeatMissed,
  HeartbeatResumed,
  BootChanged,
  SignalUnhealthy,
  SignalHealthy,
  TimerFired,
  CommandResult,
  OperatorPause,
  OperatorResume,
  OperatorReset,
  ConfigDesired,
  ConfigReported,
  ContractReported,
  NodeForgotten,
  type NodeEventType,
  type NodeEventOf,
} from "./events.js";
export {
  COMMAND_VERSION,
  Command,
  COMMAND_KINDS,
  AgentCommandReply,
  ACTUATORS,
  ACTUATOR_OF,
  Taint,
  FENCING_TAINT,
  OUT_OF_SERVICE_TAINT,
  type Actuator,
  type CommandKind,
  type CommandOf,
  type CommandParams,
  type CommandRequest,
  CommandResultData,
  type CommandResultOf,
  type ResultFacts,
} from "./commands.js";
export { AUDIT_VERSION, AuditRecord } from "./audit.js";
export {
  Policy,
  AgentTiming,
  FleetLimit,
  Strategy,
  DEFAULT_POLICY,
  DEMO_POLICY,
  computeSafeTime,
  safeTimeOf,
  resolveLimit,
  type PolicyInput,
  type SafeTimeBreakdown,
  WATCHDOG_METHOD,
  POWER_METHOD,
  FenceMethod,
  fencingLevelsOf,
  type FenceLevel,
} from "./policy.js";
export { Heartbeat, HeartbeatAck, MAX_ACK_BYTES, AgentContract, WatchdogKind, withdrawnContract } from "./heartbeat.js";
export {
  Member,
  MembershipView,
  createMembershipView,
  engineHasMajority,
  groupHasMajority,
  sameMembership,
  votesOf,
  witnessVote,
} from "./membership.js";
export { fencingGuarantee, contractMeeting, type FencingGuarantee, type Guarantee } from "./guarantee.js";
export { DeadLetter } from "./dlq.js";
export {
  systemClock,
  type Clock,
  type ClusterApi,
  type FenceAgent,
  type FenceAnswer,
  type FenceTarget,
  type MembershipStore,
  type Provisioner,
  type Watchdog,
} from "./ports.js";
export { ASK_ZOD, createFastParse, type FastParse } from "./fast-parse.js";
export { parseSnapshotHead, SnapshotHead, parseMessage, deadLetter, MAX_MESSAGE_BYTES, type Parsed } from "./parse.js";
export { FleetBudget, PartitionLease, EngineInstance } from "./kv.js";
