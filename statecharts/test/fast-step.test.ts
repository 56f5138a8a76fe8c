import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { DEMO_POLICY, DEFAULT_POLICY, Policy, type NodeEvent } from "@fenceline/contracts";
import { createFastStep, createNodeMachine, initialState, step, type MachineState, type NodeMachine } from "@fenceline/statecharts";
import { HistoryGenerator } from "../../packages/cli/src/bench/history.js";
import { createDecider, createReplayer } from "../../packages/engine/src/index.js";
import { drive, intentsArb } from "./properties.js";

/**
 * Differential tests: the lean interpreter (`createFastStep`) against xstate's `transition()`
 * (`step`), step by step, on the property generator's sequences and on the replay bench's history.
 */
const SEED = 20_240_611;
const NUM_RUNS = 400;
const FENCE_AGENT_POLICY = Policy.parse({ ...DEMO_POLICY, version: "demo-fa", fencing: { ...DEMO_POLICY.fencing, fenceAgent: true } });

/** Applies every event with both, each from xstate's previous state, and from the fast fold's own state. */
function compare(machine: NodeMachine, initial: MachineState, events: NodeEvent[]): number {
  const fast = createFastStep(machine);
  let slow = initial;
  let quick = initial;
  for (const event of events) {
    const expected = step(machine, slow, event);
    expect(fast(slow, event)).toEqual(expected);
    const own = fast(quick, event);
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
    fc.assert(
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
        const actual = fast(fastBefore, event);
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
