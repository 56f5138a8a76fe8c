import { afterEach, describe, expect, it, vi } from "vitest";
import { benchRecovery } from "../../packages/cli/src/bench/recovery.js";

type Model = { name: string; p50Ms: number | null; p99Ms: number | null; maxMs: number | null; neverRecovered: number; violations: number };

afterEach(() => vi.restoreAllMocks());

describe("fenceline bench recovery", () => {
  it("prints the table on stderr and one JSON document on stdout: Fenceline's default recovers in well under a minute, the others take minutes or never", async () => {
    // With --json the table goes to stderr and stdout holds only the JSON document.
    let out = "";
    let table = "";
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    });
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      table += String(chunk);
      return true;
    });
    const code = await benchRecovery(["recovery", "--cases", "8", "--json"]);
    vi.restoreAllMocks();
    expect(code).toBe(0);
    expect(table).toMatch(/MODEL\s+P50\s+P99\s+MAX\s+NEVER RECOVERED\s+VIOLATIONS/);
    const { models } = JSON.parse(out) as { models: Model[] };
    expect(models.map((m) => m.name)).toEqual(["fenceline", "kubernetes", "nhc-snr"]);
    const [fenceline, kubernetes, nhc] = models as [Model, Model, Model];
    expect(fenceline).toMatchObject({ neverRecovered: 0, violations: 0 });
    expect(fenceline.maxMs!).toBeLessThan(30_000);
    expect(kubernetes.neverRecovered).toBeGreaterThan(0);
    expect(nhc.p50Ms!).toBeGreaterThan(8 * 60_000);
    expect(nhc.violations + kubernetes.violations).toBe(0);
  }, 120_000);
});
