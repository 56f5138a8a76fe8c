export { createHeartbeatDetector, type HeartbeatDetector } from "./heartbeat-detector.js";
export { runHeartbeatDetector } from "./run-heartbeat-detector.js";
export { heartbeatAck } from "./heartbeat-ack.js";
export { runNodeStateService, NODE_STATE_QUEUE, type NodeStateReply, type NodeStateService } from "./node-state-service.js";
export {
  parseSerfMembers,
  translateSerfEvent,
  isMembershipEvent,
  SERF_SIGNAL,
  SERF_ID_WINDOW_MS,
  type SerfMember,
  type SerfRejected,
  type SerfTranslation,
  type SerfMembershipEvent,
} from "./serf-events.js";
export { runSerfHandler, SERF_DLQ_SOURCE, type SerfHandlerOptions, type SerfHandlerOutcome } from "./serf-handler.js";
export {
  createConditionDetector,
  defaultConditionRules,
  labelMatcher,
  DEFAULT_EXCLUDE_LABEL,
  type ConditionDetector,
  type ConditionDetectorOptions,
  type ConditionRule,
} from "./condition-detector.js";
export { runConditionDetector, type RunConditionDetectorOptions } from "./condition-detector-run.js";
export {
  createMembershipKeeper,
  createMemoryMembershipStore,
  nextMembershipView,
  isMemberRecord,
  peerUrlOf,
  FORGOTTEN_STATE,
  type MembershipKeeper,
  type MemberRecord,
} from "./membership-keeper.js";
export { runMembershipKeeper } from "./run-membership-keeper.js";
