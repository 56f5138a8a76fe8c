import {
  ACTUATOR_OF,
  AUDIT_VERSION,
  COMMAND_VERSION,
  type AuditRecord,
  type Command,
  type NodeEvent,
  type Policy,
} from "@fenceline/contracts";
import { createNodeMachine, initialState, statePath, step, type MachineState, type NodeMachine, type StepResult } from "@fenceline/statecharts";
import type { NodeSnapshot } from "./snapshot.js";

export type FoldResult = {
  snapshot: NodeSnapshot;
  commands: Command[];
  audit: AuditRecord;
};

/**
 * A policy with its machine, built once and reused for every fold. `step`, when set, replaces
 * xstate's `step(machine, …)` (replay sets the proven-equivalent fast interpreter; see replay.ts).
 */
export type Decider = { policy: Policy; machine: NodeMachine; step?: (state: MachineState, event: NodeEvent) => StepResult };

export function createDecider(policy: Policy, machine: NodeMachine = createNodeMachine(policy)): Decider {
  return { policy, machine };
}

export const commandId = (node: string, seq: number, index: number) => `cmd:${node}:${seq}:${index}`;
export const auditId = (node: string, seq: number) => `audit:${node}:${seq}`;

/**
 * The engine as a fold: `(snapshot, event) → (snapshot', commands, audit)`. Pure and
 * deterministic. Output ids derive from the event's stream sequence, so folding the same event
 * again after a crash re-emits the same ids and JetStream stores them once.
 */
export function fold(decider: Decider, prior: NodeSnapshot | null, event: NodeEvent, seq: number): FoldResult {
  const { policy, machine } = decider;
  const before = prior ? { value: prior.value, context: prior.context } : initialState(machine, event.node, event.at);
  const from = prior ? prior.path : "new";
  const { state, emitted } = decider.step ? decider.step(before, event) : step(machine, before, event);
  const to = statePath(state.value);
  const epoch = state.context.epoch;

  const commands: Command[] = [];
  const reasons: string[] = [];
  for (const out of emitted) {
    if (out.type === "reason") {
      reasons.push(out.text);
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
  const set: Record<string, number> = {};
  for (const [name, due] of Object.entries(afterTimers)) if (beforeTimers[name] !== due) set[name] = due;
  const cleared = Object.keys(beforeTimers).filter((name) => !(name in afterTimers));

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
    timers: { set, cleared },
    ...(reasons.length > 0 ? { reason: reasons.join("; ") } : {}),
    policyVersion: policy.version,
  };

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
