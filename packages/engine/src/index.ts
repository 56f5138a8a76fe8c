export { fold, createDecider, commandId, auditId, actuatorOf, type Decider, type FoldResult } from "./fold.js";
export { createEngineCore, type EngineCore, type ApplyOutcome } from "./engine.js";
export { createTimerService, timerEventId, type TimerService } from "./timer-service.js";
export { createMemorySnapshotStore, createMemoryOutputs } from "./memory.js";
export type { SnapshotStore, OutputSink, EventSink, EventLog } from "./ports.js";
export type { NodeSnapshot } from "./snapshot.js";
export { runEngine, type RunningEngine } from "./nats/run-engine.js";
export { createKvSnapshotStore } from "./nats/kv-snapshot-store.js";
