import { describe, expect, it } from "vitest";
import { runSeed } from "../../src/index.js";

describe("the chaos lab is deterministic", () => {
  it("the same seed gives a byte-identical audit and trail; other seeds give others", async () => {
    const first = await runSeed(3, { keep: true });
    const again = await runSeed(3, { keep: true });
    expect(JSON.stringify(again.audit)).toBe(JSON.stringify(first.audit));
    expect(JSON.stringify(again.trail)).toBe(JSON.stringify(first.trail));
    expect(again.digest).toBe(first.digest);
    expect(first.audit!.length).toBeGreaterThan(first.nodes.length);

    const digests = new Set<string>();
    for (const seed of [3, 4, 5, 6, 7]) digests.add((await runSeed(seed)).digest);
    expect(digests.size).toBe(5);
  });

  it("nothing in the lab path reads the wall clock or Math.random", async () => {
    const { random } = Math;
    const { now } = Date;
    const reads: string[] = [];
    Math.random = () => {
      reads.push(new Error("Math.random").stack ?? "");
      return random();
    };
    Date.now = () => {
      reads.push(new Error("Date.now").stack ?? "");
      return now();
    };
    try {
      await runSeed(11, { kinds: ["crash", "network-loss", "engine-crash", "message-chaos", "partition-minority"], faults: 4 });
    } finally {
      Math.random = random;
      Date.now = now;
    }
    // vitest's own bookkeeping may read the clock; the lab's code may not.
    expect(reads.filter((stack) => /packages\/(engine|detectors|actuators|agent|sim|statecharts|contracts)\/src/.test(stack))).toEqual([]);
  });
});
