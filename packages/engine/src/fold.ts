import {
  ACTUATOR_OF,
  AUDIT_VERSION,
  COMMAND_VERSION,
  type AuditRecord,
  type Command,
  type NodeEvent,
  type Policy,
} from "@fenceline/contracts";
import {
  FastStepUnsupported,
  createFastInitial,
  createFastStep,
  createNodeMachine,
  initialState,
  statePath,
  step,
  type MachineState,
  type NodeMachine,
  type StepResult,
} from "@fenceline/statecharts";
import type { NodeSnapshot } from "./snapshot.js";

export type FoldResult = {
  snapshot: NodeSnapshot;
  commands: Command[];
  audit: AuditRecord;
};

/** How a decider runs the machine: "fast" (default) or xstate's own `transition()`. */
export type Interpreter = "fast" | "xstate";

/** What outputs say of an interpreter (`fenceline replay`, `fenceline bench replay`). */
export const INTERPRETER_NAMES: Record<Interpreter, string> = {
  xstate: "xstate's own transition()",
  fast: "the lean interpreter (fast-step)",
};

/** A policy with its machine, built once and reused for every fold, and how a step is run. */
export type Decider = {
  policy: Policy;
  machine: NodeMachine;
  interpreter: Interpreter;
  step: (state: MachineState, event: NodeEvent) => StepResult;
  /** A node's state before its first event (`initialState`). */
  initial: (node: string, at: number) => MachineState;
};

/**
 * The decider of a policy. By default a step runs the lean interpreter of the machine's own
 * config and implementations (`createFastStep`, shown equal to xstate's `transition()` step by
 * step by statecharts/test/fast-step.test.ts; the replay and throughput benchmarks compare its
 * folds with an audit written by xstate), several times faster; a machine or an action outside
 * the subset it interprets falls back to xstate.
 * `interpreter: "xstate"` always runs xstate (the reference the fast one is checked against).
 */
export function createDecider(
  policy: Policy,
  machine: NodeMachine = createNodeMachine(policy),
  options: { interpreter?: Interpreter } = {},
): Decider {
  const reference = (state: MachineState, event: NodeEvent) => step(machine, state, event);
  const referenceInitial = (node: string, at: number) => initialState(machine, node, at);
  if (options.interpreter === "xstate") return { policy, machine, interpreter: "xstate", step: reference, initial: referenceInitial };
  let fast;
  let fastInitial;
  try {
    fast = createFastStep(machine);
    fastInitial = createFastInitial(machine);
  } catch (err) {
    if (err instanceof FastStepUnsupported) return { policy, machine, interpreter: "xstate", step: reference, initial: referenceInitial };
    throw err;
  }
  return {
    policy,
    machine,
    interpreter: "fast",
    initial: (node, at) => {
      try {
        return fastInitial(node, at);
      } catch (err) {
        if (err instanceof FastStepUnsupported) return referenceInitial(node, at);
        throw err;
      }
    },
    step: (state, event) => {
      try {
        return fast(state, event);
      } catch (err) {
        if (err instanceof FastStepUnsupported) return reference(state, event);
        throw err;
      }
    },
  };
}

export const commandId = (node: string, seq: number, index: number) => `cmd:${node}:${seq}:${index}`;
export const auditId = (node: string, seq: number) => `audit:${node}:${seq}`;

/** The audit's `timers` when the step left them alone (most steps): one shared, frozen value. */
const NO_TIMER_CHANGES: AuditRecord["timers"] = Object.freeze({
  set: Object.freeze({}),
  cleared: Object.freeze([]) as unknown as string[],
});

/**
 * The engine as a fold: `(snapshot, event) → (snapshot', commands, audit)`. Pure and
 * deterministic. Output ids derive from the event's stream sequence, so folding the same event
 * again after a crash re-emits the same ids and JetStream stores them once.
 */
export function fold(decider: Decider, prior: NodeSnapshot | null, event: NodeEvent, seq: number): FoldResult {
  const { policy } = decider;
  const before: MachineState = prior ?? decider.initial(event.node, event.at);
  const from = prior ? prior.path : "new";
  const result = decider.step(before, event);
  const { state, emitted } = result;
  const to = result.path ?? statePath(state.value);
  const epoch = state.context.epoch;

  const commands: Command[] = [];
  let reason: string | undefined;
  for (const out of emitted) {
    if (out.type === "reason") {
      reason = reason === undefined ? out.text : `${reason}; ${out.text}`;
      continue;
    }
    const { kind, params } = out.request;
    const minDeadline = "timeoutMs" in params ? (params as { timeoutMs: number }).timeoutMs : 0;
    commands.push({
      v: COMMAND_VERSION,
      id: commandId(event.node, seq, commands.length),
      node: event.node,
      epoch,
      kind,
      issuedAt: event.at,
      deadline: event.at + Math.max(policy.commandTimeoutMs, minDeadline + 5_000),
      causedBy: seq,
      params,
    } as Command);
  }

  const beforeTimers = before.context.timers;
  const afterTimers = state.context.timers;
  let timers = NO_TIMER_CHANGES;
  if (beforeTimers !== afterTimers) {
    const set: Record<string, number> = {};
    const cleared: string[] = [];
    for (const name in afterTimers) if (beforeTimers[name] !== afterTimers[name]) set[name] = afterTimers[name]!;
    for (const name in beforeTimers) if (!(name in afterTimers)) cleared.push(name);
    timers = { set, cleared };
  }

  const audit: AuditRecord = {
    v: AUDIT_VERSION,
    id: auditId(event.node, seq),
    node: event.node,
    seq,
    at: event.at,
    event: { id: event.id, type: event.type, source: event.source },
    from,
    to,
    changed: from !== to,
    epoch,
    commands,
    timers,
    policyVersion: policy.version,
  };
  if (reason !== undefined) audit.reason = reason;

  return {
    snapshot: {
      v: 1,
      node: event.node,
      value: state.value,
      path: to,
      context: state.context,
      lastSeq: seq,
      policyVersion: policy.version,
      updatedAt: event.at,
    },
    commands,
    audit,
  };
}

/** Which actuator subject a command goes to. */
export const actuatorOf = (command: Command) => ACTUATOR_OF[command.kind];
