import { createActor, type StateValue } from "xstate";
import type { NodeEvent } from "@fenceline/contracts";
import type { Emitted, NodeContext } from "./context.js";
import type { NodeMachine } from "./machine.js";
import { firedTimer, withoutTimers } from "./helpers.js";

/** What is persisted of a node's machine: its state value and context. */
export type MachineState = { value: StateValue; context: NodeContext };

export type StepResult = {
  state: MachineState;
  emitted: Emitted[];
  /** `statePath(state.value)`, when the interpreter knows it already. */
  path?: string;
};

/** "suspect.requestingSlot" for `{ suspect: "requestingSlot" }`. */
export function statePath(value: StateValue): string {
  if (typeof value === "string") return value;
  const [key, child] = Object.entries(value)[0] ?? ["?", undefined];
  return child === undefined || (typeof child === "object" && Object.keys(child).length === 0)
    ? key
    : `${key}.${statePath(child as StateValue)}`;
}

/** The top-level state of a path ("suspect" for "suspect.waiting"). */
export function phaseOf(path: string): string {
  const dot = path.indexOf(".");
  return dot < 0 ? path : path.slice(0, dot);
}

/**
 * A node's state before its first event: what `initialTransition(machine, { node, at })` gives,
 * computed with the cached inert scope (see `inertScope`).
 */
export function initialState(machine: NodeMachine, node: string, at: number): MachineState {
  const { scope, actions } = inertScope(machine);
  actions.length = 0;
  const snapshot = machine.getInitialSnapshot(scope, { node, at });
  actions.length = 0;
  return { value: snapshot.value, context: snapshot.context };
}

type ActorScope = Parameters<NodeMachine["transition"]>[2];
type Inert = { scope: ActorScope; actions: Array<{ type: string }> };
const inertScopes = new WeakMap<NodeMachine, Inert>();

/**
 * What xstate's `transition()` builds on every call (an inert actor scope that collects the
 * actions instead of running them), built once per machine: creating it constructs a whole actor
 * and its initial snapshot, which cost about 85 % of a step. Sound because the machine spawns and
 * invokes no actors (nothing registers in the scope's system) and JavaScript runs one step at a
 * time; the actions are collected per call exactly as `transition()` does.
 */
function inertScope(machine: NodeMachine): Inert {
  let inert = inertScopes.get(machine);
  if (!inert) {
    const self = createActor(machine, { input: { node: "", at: 0 } });
    const actions: Array<{ type: string }> = [];
    const scope = {
      self,
      defer: () => {},
      id: "",
      logger: () => {},
      sessionId: "",
      stopChild: () => {},
      system: self.system,
      emit: () => {},
      actionExecutor: (action: { type: string }) => void actions.push(action),
    } as unknown as ActorScope;
    inert = { scope, actions };
    inertScopes.set(machine, inert);
  }
  return inert;
}

type Resolved = ReturnType<NodeMachine["resolveState"]>;
const resolvedStates = new WeakMap<NodeMachine, Map<string, Resolved>>();

/**
 * `machine.resolveState({ value, context })`, with the part that depends only on the state value
 * (the active state nodes, the value, tags and status) computed once per state: the result
 * equals a fresh `resolveState` (a snapshot with the given context and no children).
 */
function resolve(machine: NodeMachine, state: MachineState): Resolved {
  let byPath = resolvedStates.get(machine);
  if (!byPath) {
    byPath = new Map();
    resolvedStates.set(machine, byPath);
  }
  const path = statePath(state.value);
  let template = byPath.get(path);
  if (!template) {
    template = machine.resolveState({ value: state.value, context: state.context });
    byPath.set(path, template);
  }
  return { ...template, context: state.context };
}

/**
 * Applies one event to a node's state. Pure: the same inputs always give the same outputs.
 * A `timer.fired` that matched a pending deadline consumes it.
 */
export function step(machine: NodeMachine, state: MachineState, event: NodeEvent): StepResult {
  const snapshot = resolve(machine, state);
  const { scope, actions: collected } = inertScope(machine);
  collected.length = 0;
  const next = machine.transition(snapshot, event, scope);
  const actions = collected.splice(0);
  const emitted: Emitted[] = [];
  for (const action of actions) {
    if ((action.type as string) === "xstate.emit") emitted.push((action as unknown as { params: { event: Emitted } }).params.event);
  }
  let context = next.context;
  const fired = firedTimer(context.timers, event);
  if (fired !== null) context = { ...context, timers: withoutTimers(context.timers, fired) };
  return { state: { value: next.value, context }, emitted };
}
