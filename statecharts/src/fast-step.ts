import type { StateValue } from "xstate";
import type { NodeEvent } from "@fenceline/contracts";
import type { Emitted, NodeContext } from "./context.js";
import { firedTimer, withoutTimers } from "./helpers.js";
import type { NodeMachine } from "./machine.js";
import { initialState, type MachineState, type StepResult } from "./step.js";

/**
 * A lean interpreter for the subset of xstate v5 the node machine uses, equivalent to `step()`
 * (xstate's `transition()` plus the timer post-processing) for that subset. It runs the machine's
 * own state nodes (xstate's parsed config: transitions, guards, `always`, entry/exit, targets,
 * `reenter`) and the machine's own implementations (`machine.implementations`, so `provide()` is
 * honoured), and reproduces xstate's macrostep/microstep algorithm (see `macrostep`,
 * `microstep`, `computeExitSet`, `computeEntrySet` in xstate's dist) for compound and atomic
 * states only. What it does not support (parallel, history or final states, invocations,
 * delayed transitions, wildcard descriptors, builtin guards, actions other than
 * `enqueueActions` using `assign`/`emit`, or plain `assign`/`emit`) makes `createFastStep` throw
 * at creation or the step throw `FastStepUnsupported` at run time; callers fall back to `step()`.
 */

export class FastStepUnsupported extends Error {}

// xstate's StateNode and TransitionDefinition, as far as they are read here.
type SN = {
  id: string;
  key: string;
  type: string;
  order: number;
  parent?: SN;
  states: Record<string, SN>;
  entry: unknown[];
  exit: unknown[];
  invoke: unknown[];
  always?: TD[];
  transitions: Map<string, TD[]>;
  initial?: { target: SN[]; actions: unknown[] };
  after?: unknown[];
};
type TD = { source: SN; target?: SN[]; reenter?: boolean; guard?: unknown; actions: unknown[] };
type Plan = {
  exit: SN[];
  entry: Array<{ node: SN; defaultEntry: boolean }>;
  leaf: SN;
  nodesChanged: boolean;
  actions: unknown[];
  resolved?: unknown[];
};
type Fn = ((...args: unknown[]) => unknown) & Record<string, unknown>;
const ACTION = 0;
const ASSIGN = 1;
const EMIT = 2;
type Ref = string | { type: string; params?: unknown } | Fn;

const isDescendant = (child: SN, parent: SN | undefined): boolean => {
  let m = child;
  while (m.parent && m.parent !== parent) m = m.parent;
  return m.parent === parent;
};

const properAncestors = (node: SN, to: SN | undefined): SN[] => {
  const out: SN[] = [];
  if (to === node) return out;
  let m = node.parent;
  while (m && m !== to) {
    out.push(m);
    m = m.parent;
  }
  return out;
};

function leastCommonAncestor(nodes: SN[]): SN | undefined {
  const [head, ...tail] = nodes;
  for (const ancestor of properAncestors(head!, undefined)) if (tail.every((n) => isDescendant(n, ancestor))) return ancestor;
  return undefined;
}

function domainOf(t: TD, root: SN): SN | undefined {
  const targets = t.target ?? [];
  if (!t.reenter && targets.every((s) => s === t.source || isDescendant(s, t.source))) return t.source;
  const lca = leastCommonAncestor([...targets, t.source]);
  if (lca) return lca;
  if (t.reenter) return undefined;
  return root;
}

/** Exit and entry sets of a transition from the configuration whose atomic state is `leaf`. */
function planOf(t: TD, leaf: SN, root: SN): Plan {
  const active = [leaf, ...properAncestors(leaf, undefined)];
  if (!t.target?.length) return { exit: [], entry: [], leaf, nodesChanged: false, actions: [...t.actions] };
  const domain = domainOf(t, root);
  const exitSet = new Set<SN>();
  if (t.reenter && t.source === domain) exitSet.add(domain!);
  for (const n of active) if (isDescendant(n, domain)) exitSet.add(n);
  const toEnter = new Set<SN>();
  const defaultEntry = new Set<SN>();
  const addAncestors = (ancestors: SN[], reentrancyDomain: SN | undefined) => {
    for (const anc of ancestors) if (!reentrancyDomain || isDescendant(anc, reentrancyDomain)) toEnter.add(anc);
  };
  const addDescendants = (node: SN) => {
    if (node.type === "compound") {
      const initial = node.initial!.target[0]!;
      toEnter.add(initial);
      defaultEntry.add(initial);
      addDescendants(initial);
      addAncestors(properAncestors(initial, node), undefined);
    }
  };
  for (const s of t.target) {
    if (t.source !== s || t.source !== domain || t.reenter) {
      toEnter.add(s);
      defaultEntry.add(s);
    }
    addDescendants(s);
  }
  for (const s of t.target) addAncestors(properAncestors(s, domain), !t.source.parent && t.reenter ? undefined : domain);
  const next = new Set(active);
  const exit = [...exitSet].sort((a, b) => b.order - a.order);
  for (const n of exit) next.delete(n);
  const entry = [...toEnter].sort((a, b) => a.order - b.order);
  for (const n of entry) next.add(n);
  const leaves = [...next].filter((n) => n.type === "atomic");
  if (leaves.length !== 1) throw new FastStepUnsupported(`transition from ${leaf.id} leaves ${leaves.length} atomic states`);
  const nodesChanged = next.size !== active.length || active.some((n) => !next.has(n));
  // A microstep's actions, in xstate's order: exits (innermost first), the transition's, entries
  // (outermost first, each followed by its initial transition's actions when entered by default).
  const actions: unknown[] = [];
  for (const n of exit) actions.push(...n.exit);
  actions.push(...t.actions);
  for (const n of entry) {
    actions.push(...n.entry);
    if (defaultEntry.has(n) && n.initial) actions.push(...n.initial.actions);
  }
  return { exit, entry: entry.map((node) => ({ node, defaultEntry: defaultEntry.has(node) })), leaf: leaves[0]!, nodesChanged, actions };
}

function allNodes(node: SN, out: SN[] = []): SN[] {
  out.push(node);
  for (const child of Object.values(node.states ?? {})) allNodes(child, out);
  return out;
}

/** The state value of the configuration whose atomic state is `leaf`, built fresh. */
function stateValueOf(path: string[]): StateValue {
  let value: StateValue = path[path.length - 1]!;
  for (let i = path.length - 2; i >= 0; i--) value = { [path[i]!]: value };
  return value;
}

/** Whether `value` is `target` or holds it (deeper than 16 levels counts as holding it). */
function refersTo(value: unknown, target: object, depth = 0): boolean {
  if (value === target) return true;
  if (typeof value !== "object" || value === null) return false;
  if (depth > 16) return true;
  if (Array.isArray(value)) {
    for (const item of value) if (refersTo(item, target, depth + 1)) return true;
    return false;
  }
  for (const key in value) if (refersTo((value as Record<string, unknown>)[key], target, depth + 1)) return true;
  return false;
}

export type FastStep = (state: MachineState, event: NodeEvent) => StepResult;

/**
 * `{ ...context }`, as generated code for the key order of the first context it copies (one
 * object literal: several times faster than a spread, which V8 runs generically for an object
 * this large); a context with other keys, or keys in another order, is spread. Contexts are JSON
 * data (own enumerable string keys), so the keys `for...in` lists are those a spread copies.
 */
function createContextClone(): (context: NodeContext) => NodeContext {
  let keys: string[] | null = null;
  let literal: ((c: NodeContext) => NodeContext) | null = null;
  return (context) => {
    if (keys === null) {
      keys = Object.keys(context);
      try {
        literal = new Function("c", `return { ${keys.map((k) => `${JSON.stringify(k)}: c[${JSON.stringify(k)}]`).join(", ")} };`) as (
          c: NodeContext,
        ) => NodeContext;
      } catch {
        // No code generation in this runtime: spread.
      }
    }
    if (literal === null) return { ...context };
    let i = 0;
    for (const key in context) if (key !== keys[i++]) return { ...context };
    return i === keys.length ? literal(context) : { ...context };
  };
}

const compiled = new WeakMap<NodeMachine, FastStep>();

/** `(state, event) => step(machine, state, event)`, without xstate's generic interpreter. */
export function createFastStep(machine: NodeMachine): FastStep {
  const cached = compiled.get(machine);
  if (cached) return cached;
  const root = (machine as unknown as { root: SN }).root;
  const guards = machine.implementations.guards as unknown as Record<string, unknown>;
  const actions = machine.implementations.actions as unknown as Record<string, unknown>;

  const nodes = allNodes(root);
  for (const n of nodes) {
    if (n.type !== "atomic" && n.type !== "compound") throw new FastStepUnsupported(`state ${n.id} is ${n.type}`);
    if (n.invoke.length > 0) throw new FastStepUnsupported(`state ${n.id} invokes`);
    for (const key of n.transitions.keys()) {
      if (key.includes("*") || key.startsWith("xstate.")) throw new FastStepUnsupported(`state ${n.id} handles ${key}`);
    }
  }
  for (const [name, g] of Object.entries(guards)) {
    if (typeof g === "function" && "check" in g) throw new FastStepUnsupported(`guard ${name} is a builtin guard`);
  }

  const pathOf = new Map<SN, string[]>();
  for (const n of nodes) {
    const path: string[] = [];
    for (let m: SN | undefined = n; m && m.parent; m = m.parent) path.unshift(m.key);
    pathOf.set(n, path);
  }
  // One value per state, shared by the results that end there (as step()'s cached snapshots share theirs).
  const valueByLeaf = new Map<SN, StateValue>(nodes.map((n) => [n, stateValueOf(pathOf.get(n)!)]));
  const pathByLeaf = new Map<SN, string>(nodes.map((n) => [n, pathOf.get(n)!.join(".")]));
  const chains = new Map<SN, SN[]>(nodes.map((n) => [n, [n, ...properAncestors(n, undefined)]]));
  // Values seen before (strings, and the shared objects this interpreter returns) → their atomic state.
  const known = new Map<StateValue, SN>();
  for (const [n, v] of valueByLeaf) if (n.type === "atomic") known.set(v, n);

  const leafOf = (value: StateValue): SN => {
    const hit = known.get(value);
    if (hit) return hit;
    let node: SN | undefined = root;
    let v: StateValue | undefined = value;
    while (node && v !== undefined) {
      if (typeof v === "string") {
        node = node.states[v];
        break;
      }
      const key: string | undefined = Object.keys(v)[0];
      if (key === undefined) break;
      node = node.states[key];
      v = (v as Record<string, StateValue>)[key];
    }
    if (!node) throw new Error(`no state for ${JSON.stringify(value)}`);
    while (node.type === "compound") node = node.initial!.target[0]!;
    if (typeof value === "string") known.set(value, node);
    return node;
  };

  const plans = new Map<TD, Map<SN, Plan>>();
  const planFor = (t: TD, leaf: SN): Plan => {
    let byLeaf = plans.get(t);
    if (!byLeaf) plans.set(t, (byLeaf = new Map()));
    let plan = byLeaf.get(leaf);
    if (!plan) byLeaf.set(leaf, (plan = planOf(t, leaf, root)));
    return plan;
  };

  const paramsOf = (ref: Ref, context: NodeContext, event: NodeEvent): unknown => {
    if (typeof ref === "function" || typeof ref === "string") return undefined;
    if (!("params" in ref)) return undefined;
    if (typeof ref.params !== "function") return ref.params;
    return (ref.params as Fn)({ context, event });
  };

  /**
   * A guard reference resolved once (its implementation and params), or null when the generic
   * path below must run it (a reference to another guard, a builtin, a missing one).
   */
  type CompiledGuard = { fn: Fn; params: unknown; paramsFn: Fn | undefined } | null;
  const compiledGuards = new Map<unknown, CompiledGuard>();
  const compileGuard = (guard: unknown): CompiledGuard => {
    const ref = guard as Ref;
    const inline = typeof ref === "function";
    const resolved = inline ? ref : guards[typeof ref === "string" ? ref : ref.type];
    if (typeof resolved !== "function" || "check" in resolved) return null;
    const params = typeof ref === "object" && "params" in ref ? ref.params : undefined;
    return { fn: resolved as Fn, params, paramsFn: typeof params === "function" ? (params as Fn) : undefined };
  };
  // One argument object for every guard call: guards are pure and synchronous (xstate requires it)
  // and keep no reference to it.
  const guardArgs = { context: undefined as unknown as NodeContext, event: undefined as unknown as NodeEvent };
  const checkGuard = (guard: unknown, context: NodeContext, event: NodeEvent): boolean => {
    let g = compiledGuards.get(guard);
    if (g === undefined) compiledGuards.set(guard, (g = compileGuard(guard)));
    if (g === null) return checkGuardRef(guard, context, event);
    const params = g.paramsFn ? g.paramsFn({ context, event }) : g.params;
    guardArgs.context = context;
    guardArgs.event = event;
    return Boolean(g.fn(guardArgs, params));
  };
  const checkGuardRef = (guard: unknown, context: NodeContext, event: NodeEvent): boolean => {
    const ref = guard as Ref;
    const inline = typeof ref === "function";
    const resolved = inline ? ref : guards[typeof ref === "string" ? ref : ref.type];
    if (!inline && !resolved) throw new Error(`Guard '${typeof ref === "string" ? ref : ref.type}' is not implemented.'.`);
    if (typeof resolved !== "function") return checkGuardRef(resolved, context, event);
    if ("check" in resolved) throw new FastStepUnsupported("builtin guard");
    return Boolean((resolved as Fn)({ context, event }, paramsOf(ref, context, event)));
  };

  // The running step's state: context and emitted events. xstate's assign makes a new context
  // each time. Here the step's first assign copies the context it was given (the caller's, never
  // changed) and later ones patch that copy in place (`fresh`), which nobody can tell apart:
  // guards, assigners and action callbacks are pure (xstate requires it) and so keep no
  // reference to the context, and an emitted event or a patch that holds the copy itself
  // (`refersTo`) makes the next assign copy again.
  const clone = createContextClone();
  let context: NodeContext;
  let assigned = false;
  let fresh = false;
  let emitted: Emitted[];

  const runAssign = (assignment: unknown, event: NodeEvent, params: unknown) => {
    let patch = assignment as Record<string, unknown>;
    if (typeof assignment === "function") patch = (assignment as Fn)(assignArgs(event), params) as Record<string, unknown>;
    else {
      for (const key in patch) {
        if (typeof patch[key] !== "function") continue;
        const args = assignArgs(event);
        const resolved: Record<string, unknown> = {};
        for (const k of Object.keys(patch)) resolved[k] = typeof patch[k] === "function" ? (patch[k] as Fn)(args, params) : patch[k];
        patch = resolved;
        break;
      }
    }
    if (Object.hasOwn(patch, "__proto__")) {
      context = { ...context, ...patch } as NodeContext;
      fresh = !refersTo(patch, context);
    } else if (!fresh) {
      // One clone then the patch, rather than a spread of both: the same own properties in the
      // same order, several times faster. The patch was computed before the clone existed, so it
      // cannot hold it.
      context = clone(context);
      Object.assign(context, patch);
      fresh = true;
    } else {
      Object.assign(context, patch);
      fresh = !refersTo(patch, context);
    }
    assigned = true;
  };
  const assignArgs = (event: NodeEvent) => ({ context, event, spawn: undefined, self: undefined, system: undefined });

  // What enqueueActions callbacks get: one `enqueue` for the interpreter, filling the running queue
  // (pairs of kind and payload).
  // (A queue is emptied by its count, not its length: `length = 0` frees the array's storage, and
  // a step runs several of these.)
  let queue: unknown[] = [];
  let queued = 0;
  const queues: unknown[][] = [];
  let depth = 0;
  let guardEvent: NodeEvent;
  const put = (kind: number, payload: unknown) => {
    queue[queued++] = kind;
    queue[queued++] = payload;
  };
  const enqueue = ((a: unknown) => put(ACTION, a)) as Fn;
  enqueue.assign = (assignment: unknown) => put(ASSIGN, assignment);
  enqueue.emit = (ev: unknown) => put(EMIT, ev);
  for (const name of ["cancel", "raise", "sendTo", "sendParent", "spawnChild", "stopChild"]) {
    enqueue[name] = () => {
      throw new FastStepUnsupported(`enqueue.${name}`);
    };
  }
  // `check` sees the context the callback got: nothing is assigned while a callback runs.
  const check = (g: unknown) => checkGuard(g, context, guardEvent);

  /** An action reference resolved once (null: nothing step() would see, such as a plain function). */
  type CompiledAction = { impl: Fn; params: unknown; paramsFn: Fn | undefined } | null;
  const compiledActions = new Map<unknown, CompiledAction>();
  const compileAction = (action: unknown): CompiledAction => {
    const ref = action as Ref;
    const inline = typeof ref === "function";
    const resolved = (inline ? ref : actions[typeof ref === "string" ? ref : ref.type]) as Fn | undefined;
    // A plain function action only reaches transition()'s executor, which step() ignores.
    if (!resolved || !("resolve" in resolved)) return null;
    if (resolved.type !== "xstate.enqueueActions" && resolved.type !== "xstate.assign" && resolved.type !== "xstate.emit") {
      throw new FastStepUnsupported(`action ${String(resolved.type)}`);
    }
    const params = !inline && typeof ref === "object" && "params" in ref ? ref.params : undefined;
    return { impl: resolved, params, paramsFn: typeof params === "function" ? (params as Fn) : undefined };
  };
  const actionOf = (action: unknown): CompiledAction => {
    let c = compiledActions.get(action);
    if (c === undefined) compiledActions.set(action, (c = compileAction(action)));
    return c;
  };
  // One argument object for every enqueueActions callback: one runs at a time (the actions it
  // enqueues run after it returned), and callbacks are pure and keep no reference to it.
  const collectArgs = {
    context: undefined as unknown as NodeContext,
    event: undefined as unknown as NodeEvent,
    enqueue,
    check,
    self: undefined,
    system: undefined,
  };

  const runAction = (action: CompiledAction, event: NodeEvent) => {
    if (action === null) return;
    const { impl } = action;
    const params = action.paramsFn ? action.paramsFn({ context, event }) : action.params;
    switch (impl.type) {
      case "xstate.enqueueActions": {
        const outer = queue;
        const outerCount = queued;
        // One queue per nesting depth, reused: a queue is read only after its callback returned.
        const list: unknown[] = (queue = queues[depth] ?? (queues[depth] = []));
        queued = 0;
        let count: number;
        depth++;
        try {
          collectArgs.context = context;
          collectArgs.event = event;
          (impl.collect as Fn)(collectArgs, params);
        } finally {
          count = queued;
          queue = outer;
          queued = outerCount;
        }
        // Enqueued actions run after the callback, in order, each seeing the context so far (as xstate does).
        for (let i = 0; i < count; i += 2) {
          const kind = list[i];
          const payload = list[i + 1];
          list[i + 1] = undefined; // held no longer than the step
          if (kind === ASSIGN) runAssign(payload, event, undefined);
          else if (kind === EMIT) emitOne(payload, event, undefined);
          else runAction(actionOf(payload), event);
        }
        depth--;
        break;
      }
      case "xstate.assign":
        runAssign(impl.assignment, event, params);
        break;
      default:
        emitOne(impl.event, event, params);
    }
  };
  const runActions = (plan: Plan, event: NodeEvent) => {
    const list = (plan.resolved ??= plan.actions.map(actionOf)) as CompiledAction[];
    for (let i = 0; i < list.length; i++) runAction(list[i]!, event);
  };

  const emitOne = (ev: unknown, event: NodeEvent, params: unknown) => {
    const out = (typeof ev === "function" ? (ev as Fn)({ context, event, self: undefined, system: undefined }, params) : ev) as Emitted;
    if (fresh && refersTo(out, context)) fresh = false;
    emitted.push(out);
  };

  /** Runs one microstep; returns the new atomic state and whether xstate's snapshot changed. */
  const microstep = (t: TD, leaf: SN, event: NodeEvent): Plan => {
    const plan = planFor(t, leaf);
    assigned = false;
    runActions(plan, event);
    return plan;
  };

  /**
   * Per atomic state, the candidates for an event type from the state out to the root, in
   * order: the first enabled one is the transition xstate selects (first enabled candidate of the
   * deepest state that has one). The same for eventless transitions.
   */
  const candidatesByLeaf = new Map<SN, Map<string, TD[]>>();
  const candidatesFor = (leaf: SN, type: string): TD[] => {
    let byType = candidatesByLeaf.get(leaf);
    if (!byType) candidatesByLeaf.set(leaf, (byType = new Map()));
    let list = byType.get(type);
    if (!list) byType.set(type, (list = chains.get(leaf)!.flatMap((n) => n.transitions.get(type) ?? [])));
    return list;
  };
  const alwaysByLeaf = new Map<SN, TD[]>(nodes.map((n) => [n, chains.get(n)!.flatMap((m) => m.always ?? [])]));

  /** The eventless transitions after a microstep, as xstate's macrostep takes them; returns the atomic state. */
  const settle = (from: SN, event: NodeEvent): SN => {
    let leaf = from;
    for (;;) {
      let always: TD | undefined;
      for (const t of alwaysByLeaf.get(leaf)!) {
        if (t.guard === undefined || checkGuard(t.guard, context, event)) {
          always = t;
          break;
        }
      }
      if (!always) return leaf;
      const plan = microstep(always, leaf, event);
      leaf = plan.leaf;
      if (!assigned && !plan.nodesChanged) return leaf;
    }
  };

  const fastStep: FastStep = (state, event) => {
    context = state.context;
    fresh = false;
    guardEvent = event;
    depth = 0;
    queued = 0;
    emitted = [];
    let leaf = leafOf(state.value);

    for (const c of candidatesFor(leaf, event.type)) {
      if (c.guard === undefined || checkGuard(c.guard, context, event)) {
        leaf = microstep(c, leaf, event).leaf;
        break;
      }
    }

    leaf = settle(leaf, event);

    let ctx = context;
    const fired = firedTimer(ctx.timers, event);
    if (fired !== null) {
      if (!fresh) ctx = clone(ctx);
      ctx.timers = withoutTimers(ctx.timers, fired);
    }
    return { state: { value: valueByLeaf.get(leaf)!, context: ctx }, emitted, path: pathByLeaf.get(leaf)! };
  };

  // The initial state: the context the machine's factory makes from the input, then the entry of
  // the initial configuration (the root and each initial child down to an atomic state, entry
  // actions outermost first, a compound state's initial actions after its entry) with xstate's
  // init event, then the eventless transitions.
  const contextOf = (machine as unknown as { config: { context?: unknown } }).config.context;
  const initialChain: SN[] = [root];
  for (let n = root; n.type === "compound"; ) initialChain.push((n = n.initial!.target[0]!));
  const initialLeaf = initialChain[initialChain.length - 1]!;
  const initialPlan: Plan = {
    exit: [],
    entry: initialChain.map((node) => ({ node, defaultEntry: node !== root })),
    leaf: initialLeaf,
    nodesChanged: true,
    actions: initialChain.flatMap((n) => [...n.entry, ...(n.type === "compound" && n.initial ? n.initial.actions : [])]),
  };
  const noSpawn = () => {
    throw new FastStepUnsupported("spawn in the context factory");
  };
  const fastInitial = (node: string, at: number): MachineState => {
    const input = { node, at };
    const event = { type: "xstate.init", input } as unknown as NodeEvent;
    context = {
      ...((typeof contextOf === "function" ? (contextOf as Fn)({ input, self: undefined, spawn: noSpawn }) : contextOf) as object),
    } as NodeContext;
    fresh = false;
    guardEvent = event;
    depth = 0;
    queued = 0;
    emitted = [];
    assigned = false;
    runActions(initialPlan, event);
    const leaf = settle(initialLeaf, event);
    return { value: valueByLeaf.get(leaf)!, context };
  };
  // Checked once against xstate's own initial state (value, context and its key order) for two
  // inputs: any difference (an action or a factory this interpreter does not model) and the
  // initial state is xstate's.
  const agrees = (node: string, at: number) => {
    try {
      const fast = fastInitial(node, at);
      const reference = initialState(machine, node, at);
      return JSON.stringify(fast) === JSON.stringify(reference);
    } catch (err) {
      if (err instanceof FastStepUnsupported) return false;
      throw err;
    }
  };
  initials.set(
    machine,
    agrees("fast-initial-probe", 0) && agrees("node-1", 1_800_000_000_123) ? fastInitial : (node, at) => initialState(machine, node, at),
  );

  compiled.set(machine, fastStep);
  return fastStep;
}

const initials = new WeakMap<NodeMachine, (node: string, at: number) => MachineState>();

/**
 * `(node, at) => initialState(machine, node, at)`, computed by the lean interpreter (xstate's
 * `getInitialSnapshot` builds a whole snapshot and runs its generic algorithm: about 12 KB of
 * garbage and most of a fold's time for a node's first event). It is xstate's own when the
 * interpreter's initial state differs from xstate's for a probe input, and
 * test/statecharts/fast-step.test.ts checks it equal on random inputs.
 */
export function createFastInitial(machine: NodeMachine): (node: string, at: number) => MachineState {
  createFastStep(machine);
  return initials.get(machine)!;
}
