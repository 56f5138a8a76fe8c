import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { enqueueActions, setup } from "xstate";
import { DEMO_POLICY, DEFAULT_POLICY, Policy, type NodeEvent } from "@fenceline/contracts";
import {
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
import { createDecider, createReplayer } from "@fenceline/engine";
import { HistoryGenerator } from "@fenceline/testing";
// Here, not in statecharts/test: the engine and the history generator depend on the statecharts.
import { drive, intentsArb } from "../../statecharts/test/properties.js";
import { assertWithSeed, PROPERTY_SEED_ENV, propertySeed } from "../../statecharts/test/seed.js";

/**
 * Differential tests: the lean interpreter (`createFastStep`) against xstate's `transition()`
 * (`step`), step by step, on the property generator's sequences and on the replay bench's history.
 * The random sequences come from a fresh seed every run (FENCELINE_PROPERTY_SEED=<seed> repeats
 * one); a failure prints its seed.
 */
const SEED = propertySeed();
const NUM_RUNS = 400;
const FENCE_AGENT_POLICY = Policy.parse({ ...DEMO_POLICY, version: "demo-fa", fencing: { fenceAgent: true } });

/** The fast step's result without the path it adds, after checking that path. */
function stripped(result: StepResult): StepResult {
  const { path, ...rest } = result;
  expect(path).toBe(statePath(result.state.value));
  return rest;
}

/** Applies every event with both, each from xstate's previous state, and from the fast fold's own state. */
function compare(machine: NodeMachine, initial: MachineState, events: NodeEvent[]): number {
  const fast = createFastStep(machine);
  let slow = initial;
  let quick = initial;
  for (const event of events) {
    const expected = step(machine, slow, event);
    expect(stripped(fast(slow, event))).toEqual(expected);
    const own = stripped(fast(quick, event));
    expect(own).toEqual(expected);
    slow = expected.state;
    quick = own.state;
  }
  return events.length;
}

describe.each([
  ["DEMO_POLICY", createNodeMachine(DEMO_POLICY)],
  ["a policy with a fence agent", createNodeMachine(FENCE_AGENT_POLICY)],
  ["a broken machine (fenceConfirmed always true)", createNodeMachine(DEMO_POLICY).provide({ guards: { fenceConfirmed: () => true } })],
  ["a broken machine with a fence agent", createNodeMachine(FENCE_AGENT_POLICY).provide({ guards: { fenceConfirmed: () => true } })],
])("the fast step with %s", (_, machine) => {
  it("gives xstate's state value, context and emitted events for every step of random sequences", () => {
    let steps = 0;
    let runs = 0;
    assertWithSeed(
      fc.property(intentsArb, (intents) => {
        const run = drive(machine, intents);
        steps += compare(machine, run.initial, run.events);
        runs++;
      }),
      { seed: SEED, numRuns: NUM_RUNS },
    );
    expect(runs).toBe(NUM_RUNS);
    expect(steps).toBeGreaterThan(NUM_RUNS * 10);
  });

  it("gives xstate's initial state (value, context, key order) for any node and time", () => {
    const initial = createFastInitial(machine);
    assertWithSeed(
      fc.property(fc.string({ minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 4_000_000_000_000 }), (node, at) => {
        const expected = initialState(machine, node, at);
        const actual = initial(node, at);
        expect(actual).toEqual(expected);
        expect(JSON.stringify(actual)).toBe(JSON.stringify(expected));
      }),
      { seed: SEED, numRuns: NUM_RUNS },
    );
  });
});

describe("the fast initial state", () => {
  it("follows a provided entry action, and another machine's context factory and entry", () => {
    const entered = createNodeMachine(DEMO_POLICY).provide({
      actions: { enterState: enqueueActions(({ enqueue }) => enqueue.assign({ since: 42, epoch: 7 })) },
    });
    expect(createFastInitial(entered)("n1", 5)).toEqual(initialState(entered, "n1", 5));
    expect(createFastInitial(entered)("n1", 5).context).toMatchObject({ since: 42, epoch: 7 });
    // A plain function entry action: xstate's initial state does not run it, nor does the interpreter.
    const spawning = setup({ actions: { start: ({ self }) => void self } }).createMachine({
      context: ({ input }: { input: { node: string; at: number } }) => ({ node: input.node, n: 1 }),
      initial: "a",
      states: { a: { entry: "start" } },
    });
    const machine = spawning as unknown as NodeMachine;
    expect(createFastInitial(machine)("n2", 9)).toEqual(initialState(machine, "n2", 9));
  });
});

describe("the differential property test's seed", () => {
  it("is fresh each run unless FENCELINE_PROPERTY_SEED gives one, and a failure names it", () => {
    expect(propertySeed({ [PROPERTY_SEED_ENV]: "-42" })).toBe(-42);
    expect(() => propertySeed({ [PROPERTY_SEED_ENV]: "soon" })).toThrow(/FENCELINE_PROPERTY_SEED must be an integer/);
    expect(new Set(Array.from({ length: 5 }, () => propertySeed({})).values()).size).toBeGreaterThan(1);
    // A fast step that is wrong (it runs another machine: fencing confirmed at once) fails the
    // comparison with xstate, and the failure says how to run it again.
    const real = createNodeMachine(DEMO_POLICY);
    const wrong = createFastStep(createNodeMachine(DEMO_POLICY).provide({ guards: { fenceConfirmed: () => true } }));
    const property = fc.property(intentsArb, (intents) => {
      const run = drive(real, intents);
      let state = run.initial;
      for (const event of run.events) {
        const expected = step(real, state, event);
        if (JSON.stringify(stripped(wrong(state, event))) !== JSON.stringify(expected)) return false;
        state = expected.state;
      }
      return true;
    });
    expect(() => assertWithSeed(property, { seed: 7, numRuns: NUM_RUNS })).toThrow(
      /property failed with seed 7; run it again with FENCELINE_PROPERTY_SEED=7 /,
    );
  });
});

describe("the fast step on the replay bench's history", () => {
  it("folds the generated history exactly as xstate does", () => {
    const generator = new HistoryGenerator({ seed: 7 });
    const machine = createNodeMachine(generator.policy);
    expect(generator.policy).toBe(DEFAULT_POLICY);
    const fast = createFastStep(machine);
    const slowStates = new Map<string, MachineState>();
    const fastStates = new Map<string, MachineState>();
    const types = new Set<string>();
    let total = 0;
    while (total < 100_000) {
      const items = generator.next(20_000);
      if (items.length === 0) break;
      for (const { event } of items) {
        const slowBefore = slowStates.get(event.node) ?? initialState(machine, event.node, event.at);
        const fastBefore = fastStates.get(event.node) ?? initialState(machine, event.node, event.at);
        const expected = step(machine, slowBefore, event);
        const actual = stripped(fast(fastBefore, event));
        if (JSON.stringify(actual) !== JSON.stringify(expected)) expect(actual).toEqual(expected);
        slowStates.set(event.node, expected.state);
        fastStates.set(event.node, actual.state);
        types.add(event.type);
      }
      total += items.length;
    }
    expect(total).toBe(100_000);
    expect(types.size).toBeGreaterThan(5);
  }, 60_000);
});

describe("replay with the fast step", () => {
  it("still finds a change to the machine's code (a provided guard) in a recorded history", () => {
    const generator = new HistoryGenerator({ seed: 3, nodes: 200 });
    const items = generator.next(20_000);
    const broken = createNodeMachine(generator.policy).provide({ guards: { fenceConfirmed: () => true } });
    const same = createReplayer({ decider: createDecider(generator.policy) });
    const changed = createReplayer({ decider: createDecider(generator.policy, broken) });
    for (const { event, seq, audit } of items) {
      same.apply(event, seq, audit);
      changed.apply(event, seq, audit);
    }
    expect(same.report().divergenceCount).toBe(0);
    expect(changed.report().divergenceCount).toBeGreaterThan(0);
  });
});

describe("the fast step's in-place context updates", () => {
  it("keep an emitted event that holds the context as it was when emitted, as xstate does", () => {
    const tiny = setup({
      actions: {
        first: enqueueActions(({ enqueue }) => enqueue.assign({ n: 1 })),
        second: enqueueActions(({ enqueue, context }) => {
          enqueue.emit({ type: "reason", text: "snapshot", context } as never);
          enqueue.assign({ n: 2 });
          enqueue.assign({ n: 3 });
        }),
      },
    }).createMachine({
      context: { n: 0 },
      initial: "a",
      states: { a: { on: { "node.joined": { target: "b", actions: ["first", "second"] } } }, b: {} },
    });
    const machine = tiny as unknown as NodeMachine;
    const before = { value: "a", context: { n: 0 } } as unknown as MachineState;
    const event = { type: "node.joined", node: "n", at: 1 } as unknown as NodeEvent;
    const expected = step(machine, before, event);
    const actual = stripped(createFastStep(machine)(before, event));
    expect(actual).toEqual(expected);
    expect((actual.emitted[0] as unknown as { context: { n: number } }).context.n).toBe(1);
    expect((actual.state.context as unknown as { n: number }).n).toBe(3);
    expect(before.context).toEqual({ n: 0 });
  });
});
