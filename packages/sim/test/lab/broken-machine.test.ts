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

describe("the lab catches agents whose fleet is not the control plane's", () => {
  // Seeds from `chaos --seeds 1000 --broken <name>`: the first that fail.
  it('lonely-agent (every agent counts only itself, as "peers": [] did): a cut-off node keeps running while the engine moves its workload', async () => {
    for (const seed of [3, 10, 18]) {
      const broken = await runSeed(seed, { broken: "lonely-agent" });
      expect(
        broken.failures.map((f) => f.invariant),
        `seed ${seed}`,
      ).toContain("remediation-before-fencing");
      expect((await runSeed(seed)).failures, `seed ${seed} with the real agents`).toEqual([]);
    }
  });

  it("stale-fleet (agents keep the fleet they first learned after it grew): a cut-off group that is a majority of its old fleet keeps running while its workloads move", async () => {
    for (const seed of [61, 570]) {
      const broken = await runSeed(seed, { broken: "stale-fleet" });
      expect(
        broken.failures.map((f) => f.invariant),
        `seed ${seed}`,
      ).toContain("remediation-before-fencing");
      expect((await runSeed(seed)).failures, `seed ${seed} with the real agents`).toEqual([]);
    }
  });
});
