import { describe, expect, it } from "vitest";
import { FAULT_KINDS, runSeed } from "../../src/index.js";

describe("every fault kind runs without violations", () => {
  it.each(FAULT_KINDS.map((k) => [k]))("%s", async (kind) => {
    for (const seed of [1, 2, 3]) {
      const r = await runSeed(seed, { kinds: [kind], faults: 2 });
      expect(r.failures, `seed ${seed}`).toEqual([]);
      expect(r.faultsInjected).toBeGreaterThan(0);
      expect(r.faults.every((f) => f.kind === kind)).toBe(true);
      expect(r.convergedAtMs).not.toBeNull();
    }
  });
});
