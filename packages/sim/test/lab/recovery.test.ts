import { describe, expect, it } from "vitest";
import { recoveryCases, runRecoveryCase, snrPeerBatches, snrSafeTimeMs, summarize } from "../../src/index.js";

describe("the recovery benchmark's models", () => {
  it("SNR's safe time follows its formula (internal/reboot/calculator.go)", () => {
    expect([2, 6, 20, 53].map(snrPeerBatches)).toEqual([1, 2, 7, 11]);
    expect(snrSafeTimeMs(6)).toBe(180_000);
    expect(snrSafeTimeMs(20)).toBe(234_000);
    expect(snrSafeTimeMs(53)).toBe(282_000);
  });

  it("Fenceline's default policy brings the replica back in well under a minute; the others take minutes or never", async () => {
    const cases = recoveryCases(4, 2);
    const run = async (model: "fenceline" | "kubernetes" | "nhc-snr") => {
      const outcomes = [];
      for (const c of cases) outcomes.push(await runRecoveryCase(model, c));
      return summarize(model, outcomes);
    };
    const fenceline = await run("fenceline");
    expect(fenceline.neverRecovered).toBe(0);
    expect(fenceline.violations).toBe(0);
    expect(fenceline.maxMs!).toBeLessThan(30_000);
    const nhc = await run("nhc-snr");
    expect(nhc.violations).toBe(0);
    const kube = await run("kubernetes");
    expect(kube.neverRecovered).toBe(cases.filter((c) => c.returnsAfterMs === null).length);
    for (const c of cases) {
      const k = await runRecoveryCase("kubernetes", c);
      if (c.returnsAfterMs !== null) expect(k.recoveredAfterMs!).toBeGreaterThanOrEqual(c.returnsAfterMs);
      const n = await runRecoveryCase("nhc-snr", c);
      // 40 s grace + 300 s unhealthy + 180 s safe time, unless the node came back first.
      if (c.returnsAfterMs === null || c.returnsAfterMs > 600_000) expect(n.recoveredAfterMs!).toBeGreaterThanOrEqual(520_000);
    }
  });
});
