import { describe, expect, it } from "vitest";
import { gateVerdict, waitForGate } from "../src/index.js";
import { VirtualClock } from "@fenceline/testing";

describe("the boot gate's rule", () => {
  it.each([
    [undefined, true],
    ["healthy", true],
    ["recovered", true],
    ["rejoining.provisioning", true],
    ["rejoining.checkingConfig", true],
    ["suspect.waiting", false],
    ["suspect.requestingSlot", false],
    ["fencing", false],
    ["remediating", false],
    ["down", false],
    ["forgotten", false],
    ["paused", false],
    ["operator", false],
  ])("engine state %s: open %s", (state, open) => {
    const verdict = gateVerdict(state);
    expect(verdict.open).toBe(open);
    expect(verdict.why).toMatch(state === undefined ? /does not know/ : new RegExp(state.replace(".", "\\.")));
  });
});

describe("waiting at the gate", () => {
  it("asks again while closed or unanswered, and opens when the engine says so", async () => {
    const clock = new VirtualClock(0);
    const answers: Array<() => Promise<string | undefined>> = [
      async () => "fencing",
      async () => Promise.reject(new Error("no responders")),
      async () => "remediating",
      async () => "rejoining.provisioning",
    ];
    const waits: string[] = [];
    const done = waitForGate({ lookup: () => answers.shift()!(), intervalMs: 2_000, clock, onWait: (why) => waits.push(why) });
    for (let i = 0; i < 3; i++) await clock.advanceSettling(2_000);
    await expect(done).resolves.toMatchObject({ open: true, why: expect.stringMatching(/rejoining\.provisioning/) });
    expect(waits).toEqual([
      expect.stringMatching(/says fencing/),
      expect.stringMatching(/cannot be asked: no responders/),
      expect.stringMatching(/says remediating/),
    ]);
    expect(answers).toHaveLength(0);
  });

  it("gives up after its timeout with the last reason", async () => {
    const clock = new VirtualClock(0);
    let asked = 0;
    const done = waitForGate({ lookup: async () => (asked++, "fencing"), intervalMs: 1_000, timeoutMs: 3_000, clock });
    for (let i = 0; i < 5; i++) await clock.advanceSettling(1_000);
    await expect(done).resolves.toMatchObject({ open: false, why: expect.stringMatching(/fencing/) });
    expect(asked).toBe(4); // at 0, 1, 2 and 3 s
  });
});
