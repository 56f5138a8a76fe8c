export {
  createNodeMachine,
  describeConfirmation,
  Timers,
  REMEDIATION_KINDS,
  NODE_STATES,
  UNFENCE_RETRY,
  type NodeMachine,
  type NodeState,
} from "./machine.js";
export {
  initialContext,
  emptyFence,
  FENCE_CONFIRMATIONS,
  type FenceConfirmation,
  type FenceProgress,
  type NodeContext,
  type NodeInput,
  type Emitted,
  type MachineEvent,
} from "./context.js";
export { driftedServices, signalsAfter, unhealthySince, bootIdOf } from "./helpers.js";
export { exportMachine, type MachineExport, type MachineStateNode, type MachineTransition } from "./export.js";
export { step, initialState, statePath, phaseOf, type MachineState, type StepResult } from "./step.js";
export { createFastStep, createFastInitial, FastStepUnsupported, type FastStep } from "./fast-step.js";
export { NodeContextSchema, FenceConfirmationSchema } from "./context-schema.js";
