export {
  createActuator,
  type ActuatorCore,
  type Handler,
  type Handlers,
  type HandlerContext,
  type Outcome,
  type Disposition,
} from "./actuator.js";
export { createClusterHandlers } from "./cluster-handlers.js";
export { createProvisionerHandlers } from "./provisioner-handlers.js";
export { createFenceHandlers, powerOffConfirmed } from "./fence-handlers.js";
export * from "./fence-agents/index.js";
export {
  decideSlot,
  releaseSlot,
  remediationSlotsAllowed,
  EMPTY_BUDGET,
  type FleetBudget,
  type FleetView,
  type SlotDecision,
} from "./fleet-guard.js";
export { createGuardHandlers, createMemoryBudgetStore, type BudgetStore } from "./guard-handlers.js";
export { runActuator } from "./nats/run-actuator.js";
export { createKvBudgetStore } from "./nats/kv-budget-store.js";
export { watchFleetView } from "./nats/fleet-view.js";
export { createAgentRelayHandlers, natsAgentRequest } from "./nats/agent-relay.js";
export { createAgentRelay, type AgentRequest } from "./agent-relay.js";
export {
  createCommandHandler,
  createCommandLoop,
  ACTUATOR_CONCURRENCY,
  DEFAULT_RETRY_DELAY_MS,
  type CommandLoopOptions,
} from "./command-loop.js";
export { createCommandProvisioner, type ProvisionCommands } from "./command-provisioner.js";
export { createFleetTracker, minDipMsOf, type FleetTracker } from "./fleet-tracker.js";
