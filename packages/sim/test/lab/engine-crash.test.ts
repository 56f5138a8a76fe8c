import { describe, expect, it } from "vitest";
import { runSeed } from "../../src/index.js";

describe("an engine that crashes and restarts loses no event", () => {
  it("every event in the log ends up in the audit exactly once, whatever the crash point", async () => {
    let crashes = 0;
    let restarts = 0;
    for (let seed = 1; seed <= 10; seed++) {
      const r = await runSeed(seed, { kinds: ["engine-crash", "crash", "network-loss", "message-chaos"], faults: 4, keep: true });
      expect(r.failures, `seed ${seed}`).toEqual([]);
      crashes += r.stats.engineCrashes!;
      restarts += r.stats.engineRestarts!;
      const seqs = r.audit!.map((a) => a.seq).sort((a, b) => a - b);
      expect(seqs, `seed ${seed}`).toEqual(Array.from({ length: r.events }, (_, i) => i + 1));
    }
    expect(crashes).toBeGreaterThan(3);
    expect(restarts).toBe(crashes);
  });
});

describe("the convergence check", () => {
  it("reports the nodes still on their way back when the bound is too short for them", async () => {
    const ok = await runSeed(4, { kinds: ["crash"], faults: 1 });
    expect(ok.failures).toEqual([]);
    const crashed = ok.faults[0]!.nodes[0]!;
    const r = await runSeed(4, { kinds: ["crash"], faults: 1, convergenceBoundMs: 1 });
    expect(r.failures.map((f) => [f.invariant, f.node])).toEqual([["converges", crashed]]);
    expect(r.failures[0]!.detail).toMatch(/has not converged .* \(bound 1 ms = 0.001s \(given\)\): state /);
  });
});
