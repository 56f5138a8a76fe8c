import { describe, expect, it } from "vitest";
import { runSeed } from "../../src/index.js";

const KINDS = ["network-loss", "partition-minority", "crash"] as const;

describe("the lab catches a broken machine", () => {
  it("a safe-time guard that always passes is reported as remediation before fencing, and a replica runs twice", async () => {
    const caught = new Map<string, number[]>();
    for (let seed = 1; seed <= 15; seed++) {
      const r = await runSeed(seed, { broken: "safe-time", kinds: KINDS, faults: 2 });
      for (const invariant of new Set(r.failures.map((f) => f.invariant))) caught.set(invariant, [...(caught.get(invariant) ?? []), seed]);
    }
    expect(caught.get("remediation-before-fencing")?.length ?? 0).toBeGreaterThanOrEqual(12);
    expect(caught.get("replica-runs-twice")?.length ?? 0).toBeGreaterThanOrEqual(1);
  });

  it("the same seeds pass with the real machine", async () => {
    for (let seed = 1; seed <= 15; seed++) {
      const r = await runSeed(seed, { kinds: KINDS, faults: 2 });
      expect(r.failures, `seed ${seed}`).toEqual([]);
    }
  });
});
