import { afterEach, describe, expect, it, vi } from "vitest";
import { benchRecovery } from "@fenceline/bench";

type Model = { name: string; p50Ms: number | null; p99Ms: number | null; maxMs: number | null; neverRecovered: number; violations: number };

afterEach(() => vi.restoreAllMocks());

describe("fenceline bench recovery", () => {
  it("prints the table on stderr and the JSON on stdout: Fenceline recovers in seconds (faster with IPMI first), the others take minutes or never", async () => {
    let out = "";
    let err = "";
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    });
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      err += String(chunk);
      return true;
    });
    const code = await benchRecovery(["recovery", "--cases", "8", "--json"]);
    vi.restoreAllMocks();
    expect(code).toBe(0);
    expect(err).toMatch(/MODEL\s+P50\s+P99\s+MAX\s+NEVER RECOVERED\s+VIOLATIONS/);
    const { models } = JSON.parse(out) as { models: Model[] };
    expect(models.map((m) => m.name)).toEqual(["fenceline", "fenceline-power", "kubernetes", "nhc-snr"]);
    const [fenceline, power, kubernetes, nhc] = models as [Model, Model, Model, Model];
    expect(fenceline).toMatchObject({ neverRecovered: 0, violations: 0 });
    expect(fenceline.maxMs!).toBeLessThan(30_000);
    expect(power).toMatchObject({ neverRecovered: 0, violations: 0 });
    // The power-off read back is proof: no waiting for the safe time.
    expect(power.maxMs!).toBeLessThan(fenceline.p50Ms!);
    expect(kubernetes.neverRecovered).toBeGreaterThan(0);
    expect(nhc.p50Ms!).toBeGreaterThan(8 * 60_000);
    expect(nhc.violations + kubernetes.violations).toBe(0);
  }, 120_000);
});
