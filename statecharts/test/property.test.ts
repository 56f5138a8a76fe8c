import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { DEMO_POLICY, Policy } from "@fenceline/contracts";
import { NODE_STATES, createNodeMachine, phaseOf, statePath } from "@fenceline/statecharts";
import { drive, intentsArb, replay, restingStates, violationsOf, type Intent } from "./properties.js";

const SEED = 20_240_611;
const NUM_RUNS = 500;
const FENCE_AGENT_POLICY = Policy.parse({ ...DEMO_POLICY, version: "demo-fa", fencing: { fenceAgent: true } });
/** Reasons that show a run reached a rare outcome (see the machine's confirmByReboot, confirmByOperator, settleMajority, startFencing and escalateFencing). */
const OUTCOMES = [
  "fencing confirmed: reboot",
  "fencing confirmed: an operator",
  "fencing confirmed: safe time: silent for",
  "the healthy majority only returned at",
  "no healthy majority now",
  "not assuming it fenced by time",
];
/** With [power] then [watchdog]: the power-off read back confirms, and a failed or late power level escalates. */
const FENCE_AGENT_OUTCOMES = [
  "fencing confirmed: reboot",
  "fencing confirmed: fence agent: powered off",
  "fencing level 1/2 [power]",
  "the healthy majority only returned at",
  "no healthy majority now",
];

describe.each([
  ["DEMO_POLICY", DEMO_POLICY, OUTCOMES],
  ["a policy with a fence agent", FENCE_AGENT_POLICY, FENCE_AGENT_OUTCOMES],
])("random event sequences with %s", (_, policy, outcomesWanted) => {
  const machine = createNodeMachine(policy);
  const resting = restingStates(policy);

  it("keep the invariants (fence before remediating, none after a reboot confirmed it, epochs grow, known states, no past deadlines) and replay identically", () => {
    const visited = new Set<string>();
    const outcomes = new Set<string>();
    fc.assert(
      fc.property(intentsArb, (intents) => {
        const run = drive(machine, intents);
        for (const { state, emitted } of run.trace) {
          visited.add(phaseOf(statePath(state.value)));
          for (const e of emitted) {
            const outcome = e.type === "reason" ? outcomesWanted.find((o) => e.text.includes(o)) : undefined;
            if (outcome) outcomes.add(outcome);
          }
        }
        expect(violationsOf(run, resting, policy)).toEqual([]);
        // (d) determinism: the same events through a fresh machine give the same states and outputs.
        expect(replay(createNodeMachine(policy), run.events)).toEqual(run.trace);
      }),
      { seed: SEED, numRuns: NUM_RUNS },
    );
    // The generator is not vacuous: its runs reach every top-level state, confirm fencing by
    // reboot, and get each of the three answers to the majority check made at the safe time.
    expect([...visited].sort()).toEqual([...NODE_STATES].sort());
    expect([...outcomes].sort()).toEqual([...outcomesWanted].sort());
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
    expect(violationsOf(drive(broken, counterexample), resting)).toContainEqual(
      expect.stringMatching(/^\(a\) .* before fencing was confirmed$/),
    );
  });

  it("reports the violation for a plain crash sequence", () => {
    const intents: Intent[] = [
      { t: "joined", dt: 0, boot: 0, sums: 0, group: false, contract: 0 },
      { t: "missed", dt: 3_000, boot: 0, ago: 1_000 },
      { t: "fire", dt: 0, pick: 0 },
      { t: "answer", dt: 100, pick: 0, ok: true, stale: false, version: 3, majority: 0 },
      { t: "answer", dt: 100, pick: 0, ok: true, stale: false, version: 3, majority: 0 },
    ];
    expect(violationsOf(drive(createNodeMachine(DEMO_POLICY), intents), resting)).toEqual([]);
    const violations = violationsOf(drive(broken, intents), resting);
    expect(violations).toEqual([
      expect.stringMatching(/^\(a\) step 5 \(command\.result at \d+\): taint\.add emitted in epoch 1 before fencing was confirmed$/),
      expect.stringMatching(
        /^\(a\) step 5 \(command\.result at \d+\): workloads\.await-gone emitted in epoch 1 before fencing was confirmed$/,
      ),
    ]);
  });
});

describe("the reboot property can fail", () => {
  // Sends a node whose fencing a reboot confirmed to remediation, as the machine did before.
  const broken = createNodeMachine(DEMO_POLICY).provide({ guards: { fenceConfirmedByReboot: () => false } });
  const resting = restingStates(DEMO_POLICY);

  it("finds remediation in an epoch confirmed by reboot", () => {
    const details = fc.check(
      fc.property(intentsArb, (intents) => violationsOf(drive(broken, intents), resting).length === 0),
      { seed: SEED, numRuns: NUM_RUNS },
    );
    expect(details.failed).toBe(true);
    const counterexample = details.counterexample![0] as Intent[];
    expect(violationsOf(drive(broken, counterexample), resting)).toContainEqual(
      expect.stringMatching(/^\(g\) .* whose fencing was confirmed by a reboot$/),
    );
  });

  it("reports the violation for a crash followed by a reboot", () => {
    const intents: Intent[] = [
      { t: "joined", dt: 0, boot: 0, sums: 0, group: false, contract: 0 },
      { t: "missed", dt: 3_000, boot: 0, ago: 1_000 },
      { t: "fire", dt: 0, pick: 0 },
      { t: "answer", dt: 100, pick: 0, ok: true, stale: false, version: 0, majority: 1 },
      { t: "bootChanged", dt: 100, boot: 3 },
      { t: "answer", dt: 100, pick: 0, ok: true, stale: false, version: 3, majority: 0 },
    ];
    const fixed = drive(createNodeMachine(DEMO_POLICY), intents);
    expect(violationsOf(fixed, resting)).toEqual([]);
    expect(statePath(fixed.trace[4]!.state.value)).toBe("rejoining.reprovisioning");
    expect(violationsOf(drive(broken, intents), resting)).toEqual([
      expect.stringMatching(
        /^\(g\) step 6 \(command\.result at \d+\): taint\.add emitted in epoch 1, whose fencing was confirmed by a reboot$/,
      ),
      expect.stringMatching(
        /^\(g\) step 6 \(command\.result at \d+\): workloads\.await-gone emitted in epoch 1, whose fencing was confirmed by a reboot$/,
      ),
    ]);
  });
});

describe("the contract property can fail", () => {
  // A machine whose policy allows looser agents than the policy the run is judged by: it trusts
  // contracts (a 3 s control-plane timeout) that the real policy does not.
  const loose = Policy.parse({ ...DEMO_POLICY, version: "demo-loose", agent: { ...DEMO_POLICY.agent, controlPlaneTimeoutMs: 3_000 } });
  const trusting = createNodeMachine(loose);
  const resting = restingStates(DEMO_POLICY);

  it("finds fencing confirmed by time for a node whose contract does not support it", () => {
    const details = fc.check(
      fc.property(intentsArb, (intents) => violationsOf(drive(trusting, intents), resting, DEMO_POLICY).length === 0),
      { seed: SEED, numRuns: NUM_RUNS },
    );
    expect(details.failed).toBe(true);
    const counterexample = details.counterexample![0] as Intent[];
    expect(violationsOf(drive(trusting, counterexample), resting, DEMO_POLICY)).toContainEqual(
      expect.stringMatching(/^\(h\) .* although its contract does not support it/),
    );
  });
});
