export {
  decideSelfFence,
  type SelfFenceInput,
  type SelfFenceDecision,
  type SelfFenceAction,
  type SelfFenceReason,
  type PeerReport,
  type PeerVerdict,
  type ControlPlaneView,
} from "./self-fence-decision.js";
export { createAgent, type Agent, type AgentOptions, type AgentState } from "./agent.js";
export type {
  AgentTransport,
  PeerTransport,
  PeerQuestionHandler,
  CommandHandler,
  CommandReply,
  WatchdogStopCommand,
  SelfFenceRecord,
  SelfFenceStore,
  MembershipViewStore,
  PeerAddress,
} from "./ports.js";
export { createFileMembershipStore, createMemoryMembershipViewStore } from "./membership-store.js";
export { parsePeerQuestion, parsePeerAnswer, verdictOfState, type PeerQuestion, type PeerAnswer } from "./peer-protocol.js";
export { createLinuxWatchdog, type LinuxWatchdog, type LinuxWatchdogOptions } from "./watchdog/linux-watchdog.js";
export {
  createFallbackRebootWatchdog,
  type FallbackRebootWatchdog,
  type FallbackRebootWatchdogOptions,
  type RebootRunner,
} from "./watchdog/fallback-reboot-watchdog.js";
export {
  selectWatchdog,
  watchdogKindOf,
  SOFTDOG_IDENTITY,
  type SelectedWatchdog,
  type WatchdogSelection,
} from "./watchdog/select-watchdog.js";
export { computeServiceChecksums, createChecksummer, type ChecksumOptions, type ServiceChecksumSpec } from "./checksums.js";
export { createNatsAgentTransport, requestNodeState, type NatsAgentTransportOptions } from "./nats-transport.js";
export { gateVerdict, waitForGate, type GateOptions, type GateVerdict } from "./boot-gate.js";
export { createMemoryAgentTransport, type MemoryAgentTransport, type MemoryAgentTransportOptions } from "./memory-transport.js";
export {
  createHttpPeerTransport,
  PEER_CHECK_PATH,
  type HttpPeerTransport,
  type HttpPeerTransportOptions,
  type PeerTlsOptions,
} from "./http-peers.js";
export { createMemoryPeerNetwork, type MemoryPeerNetwork, type MemoryPeerNetworkOptions } from "./memory-peers.js";
export { createFileSelfFenceStore, createMemorySelfFenceStore } from "./self-fence-store.js";
export { readBootId, nextIncarnation, BOOT_ID_PATH } from "./boot-identity.js";
export { loadAgentConfig, parseAgentConfig, AgentConfigError, type AgentConfig } from "./config.js";
export { startAgent, runAgent, runGate, type RunningAgent } from "./main.js";
export { agentMain } from "./command.js";
export { createFileContactStore, createMemoryContactStore, type ContactStore, type ContactRecord } from "./contact-store.js";
export { renderAgentConfig, NODE_NAME_PLACEHOLDER, NODE_IP_PLACEHOLDER } from "./render-config.js";
export { agentOptionsOf, type AgentRuntime } from "./options-from-config.js";
