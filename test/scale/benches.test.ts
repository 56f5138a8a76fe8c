import { describe, expect, it } from "vitest";
import { oneJsonDocument, runCli } from "../e2e/cli.js";

/**
 * The scale benchmarks run, with tiny parameters, as a user runs them (the built CLI): each
 * prints its table on stderr and one JSON document on stdout. No timing is asserted: figures are for
 * docs/scale.md, measured with the defaults.
 */
async function bench(args: string[]): Promise<Record<string, unknown>> {
  const result = await runCli(["bench", ...args, "--json"], { timeoutMs: 90_000, env: { FENCELINE_LOG_LEVEL: "warn" } });
  expect(result.code, result.stderr.slice(-3_000)).toBe(0);
  expect(result.stderr).toContain("BENCHMARK");
  return oneJsonDocument<Record<string, unknown>>(result);
}

describe("fenceline bench throughput|fleet|restart|ownership (smoke)", () => {
  it("throughput: the engine, the bare loop and the same writes without deciding, over the same events, and the ratios", async () => {
    const r = await bench(["throughput", "--events", "2000", "--nodes", "100"]);
    expect(Object.keys(r)).toEqual([
      "engineEventsPerSec",
      "bareEventsPerSec",
      "sameWritesEventsPerSec",
      "ratio",
      "ratioToSameWrites",
      "natsServerVersion",
    ]);
    expect(r.engineEventsPerSec).toBeGreaterThan(0);
    expect(r.bareEventsPerSec).toBeGreaterThan(0);
    expect(r.sameWritesEventsPerSec).toBeGreaterThan(0);
    expect(r.ratio).toBeCloseTo((r.engineEventsPerSec as number) / (r.bareEventsPerSec as number), 2);
    expect(r.ratioToSameWrites).toBeCloseTo((r.engineEventsPerSec as number) / (r.sameWritesEventsPerSec as number), 2);
    expect(r.natsServerVersion).toMatch(/^\d+\.\d+\.\d+/);
  }, 90_000);

  it("fleet: every silent agent is detected; CPU and memory of the control plane are reported", async () => {
    const r = await bench(["fleet", "--nodes", "500", "--kill", "5", "--steady", "1"]);
    expect(r).toMatchObject({ nodes: 500, killed: 5, detected: 5, timeoutMs: 3_000 });
    expect(r.detectionP99Ms).toBeGreaterThan(0);
    expect(r.rssMb).toBeGreaterThan(0);
    expect(r.p99ToTarget).toBeCloseTo((r.detectionP99Ms as number) / 4_000, 2);
    expect(r.peakRssToLimit).toBeCloseTo((r.peakRssMb as number) / 1_024, 2);
  }, 90_000);

  it("restart: an engine resumes every node from its snapshot", async () => {
    const r = await bench(["restart", "--nodes", "500", "--runs", "1"]);
    expect(r).toMatchObject({ nodes: 500, partitions: 16 });
    expect(r.resumeMs).toBeGreaterThan(0);
    expect(r.listSpeedup).toBeCloseTo((r.keysAndGetsMs as number) / Math.max(1, r.listMs as number), 0);
    for (const key of ["readerMs", "directBatchMs"]) expect(r[key]).toBeGreaterThan(0);
  }, 90_000);

  it("ownership: consumer pinning through a kill -9, an idle kill and a server restart, every event audited once and in order", async () => {
    // Leases run in test/scale/failover.test.ts and cluster.test.ts; the bench's own code runs here.
    const r = await bench(["ownership", "--mode", "pinned", "--lease-ms", "2000", "--rate", "100", "--nodes", "50"]);
    expect(r).toMatchObject({ leaseMs: 2_000, rate: 100 });
    const pinned = r.pinned as {
      kill: { takeoverMs: { untaken: number }; idleUnownedAfterMs: { unowned: number }; checks: Record<string, number> };
      restart: { checks: Record<string, number> };
    };
    expect(pinned.kill.takeoverMs.untaken).toBe(0);
    for (const checks of [pinned.kill.checks, pinned.restart.checks])
      expect(checks).toMatchObject({ missing: 0, duplicateAudits: 0, orderViolations: 0 });
    // What pinning cannot do: an idle partition whose owner died gets no owner.
    expect(pinned.kill.idleUnownedAfterMs.unowned).toBeGreaterThan(0);
  }, 150_000);
});
