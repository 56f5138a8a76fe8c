import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { DEMO_POLICY, Policy } from "@fenceline/contracts";
import { NODE_STATES, createNodeMachine, phaseOf, statePath } from "@fenceline/statecharts";
import { drive, intentsArb, replay, restingStates, violationsOf, type Intent } from "./properties.js";

const SEED = 20_240_611;
const NUM_RUNS = 300;
const FENCE_AGENT_POLICY = Policy.parse({ ...DEMO_POLICY, version: "demo-fa", fencing: { ...DEMO_POLICY.fencing, fenceAgent: true } });

describe.each([
  ["DEMO_POLICY", DEMO_POLICY],
  ["a policy with a fence agent", FENCE_AGENT_POLICY],
])("random event sequences with %s", (_, policy) => {
  const machine = createNodeMachine(policy);
  const resting = restingStates(policy);

  it("keep the invariants (fence before remediating, epochs grow, known states, no past deadlines) and replay identically", () => {
    const visited = new Set<string>();
    fc.assert(
      fc.property(intentsArb, (intents) => {
        const run = drive(machine, intents);
        for (const { state } of run.trace) visited.add(phaseOf(statePath(state.value)));
        expect(violationsOf(run, resting)).toEqual([]);
        // (d) determinism: the same events through a fresh machine give the same states and outputs.
        expect(replay(createNodeMachine(policy), run.events)).toEqual(run.trace);
      }),
      { seed: SEED, numRuns: NUM_RUNS },
    );
    // The generator is not vacuous: its runs reach every top-level state.
    expect([...visited].sort()).toEqual([...NODE_STATES].sort());
  });
});

describe("the property test can fail", () => {
  const broken = createNodeMachine(DEMO_POLICY).provide({ guards: { fenceConfirmed: () => true } });
  const resting = restingStates(DEMO_POLICY);

  it("finds remediation before fencing in a machine that skips the confirmation", () => {
    const details = fc.check(
      fc.property(intentsArb, (intents) => violationsOf(drive(broken, intents), resting).length === 0),
      { seed: SEED, numRuns: NUM_RUNS },
    );
    expect(details.failed).toBe(true);
    const counterexample = details.counterexample![0] as Intent[];
    expect(violationsOf(drive(broken, counterexample), resting)).toContainEqual(expect.stringMatching(/^\(a\) .* before fencing was confirmed$/));
  });

  it("reports the violation for a plain crash sequence", () => {
    const intents: Intent[] = [
      { t: "joined", dt: 0, boot: 0, sums: 0, group: false },
      { t: "missed", dt: 3_000, boot: 0, ago: 1_000 },
      { t: "fire", dt: 0, pick: 0 },
      { t: "answer", dt: 100, pick: 0, ok: true, stale: false, version: 3 },
      { t: "answer", dt: 100, pick: 0, ok: true, stale: false, version: 3 },
    ];
    expect(violationsOf(drive(createNodeMachine(DEMO_POLICY), intents), resting)).toEqual([]);
    const violations = violationsOf(drive(broken, intents), resting);
    expect(violations).toEqual([
      expect.stringMatching(/^\(a\) step 5 \(command\.result at \d+\): taint\.add emitted in epoch 1 before fencing was confirmed$/),
      expect.stringMatching(/^\(a\) step 5 \(command\.result at \d+\): workloads\.await-gone emitted in epoch 1 before fencing was confirmed$/),
    ]);
  });
});
