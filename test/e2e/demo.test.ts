import { describe, expect, it } from "vitest";
import { oneJsonDocument, runCli } from "./cli.js";

type Summary = {
  nodes: number;
  eventsProcessed: number;
  faults: Array<{
    node: string;
    kind: string;
    detectedAfterMs: number | null;
    fencedAfterMs: number | null;
    fencedBy: string | null;
    workloadsRecoveredAfterMs: number | null;
    rejoinedAfterMs: number | null;
    finalState: string;
    reprovisioned: boolean;
    selfFenced: boolean;
  }>;
  invariantViolations: unknown[];
  reboots: number;
};

async function demo(args: string[]): Promise<Summary> {
  return (await demoWithProgress(args)).summary;
}

/** The summary, and the progress the demo wrote to stderr (every transition, with its reason). */
async function demoWithProgress(args: string[]): Promise<{ summary: Summary; progress: string }> {
  const result = await runCli(["demo", "--json", ...args]);
  expect(result.code, result.stderr.slice(-3000)).toBe(0);
  return { summary: oneJsonDocument<Summary>(result), progress: result.stderr };
}

describe("fenceline demo --json", () => {
  it("recovers a crashed node, a node that lost its network and a rebooted node, never running a workload twice", async () => {
    const s = await demo([]);
    expect(s.nodes).toBe(12);
    expect(s.eventsProcessed).toBeGreaterThan(12);
    expect(s.invariantViolations).toEqual([]);
    expect(s.faults.map((f) => f.kind).sort()).toEqual(["crash", "network-loss", "reboot"]);
    for (const f of s.faults) {
      expect(f.finalState).toBe("healthy");
      expect(f.detectedAfterMs).not.toBeNull();
      expect(f.workloadsRecoveredAfterMs).not.toBeNull();
      expect(f.rejoinedAfterMs).not.toBeNull();
    }
    const crash = s.faults.find((f) => f.kind === "crash")!;
    const loss = s.faults.find((f) => f.kind === "network-loss")!;
    // Workloads move only after fencing is confirmed.
    expect(crash.fencedAfterMs).not.toBeNull();
    expect(crash.workloadsRecoveredAfterMs!).toBeGreaterThanOrEqual(crash.fencedAfterMs!);
    expect(loss.selfFenced).toBe(true);
    expect(loss.workloadsRecoveredAfterMs!).toBeGreaterThanOrEqual(loss.fencedAfterMs!);
    // How each was fenced: no power device in this scenario.
    expect(["safe-time", "watchdog", "reboot"]).toContain(crash.fencedBy);
    expect(["safe-time", "watchdog", "reboot"]).toContain(loss.fencedBy);
    expect(s.faults.find((f) => f.kind === "reboot")!.fencedBy).toBeNull();
  });

  it.each([
    ["network-loss", (s: Summary) => expect(s.faults[0]!.selfFenced && s.faults[0]!.reprovisioned).toBe(true)],
    ["reboot", (s: Summary) => expect([s.faults[0]!.fencedAfterMs, s.faults[0]!.reprovisioned]).toEqual([null, true])],
    ["agent-crash", (s: Summary) => expect(s.reboots).toBe(1)],
    [
      "partition-minority",
      (s: Summary) => {
        expect(s.faults).toHaveLength(3);
        for (const f of s.faults) {
          expect(f.selfFenced, f.node).toBe(true);
          // Every node of the group rejoins after it was fenced (not "0 ms after the fault").
          expect(f.rejoinedAfterMs!, f.node).toBeGreaterThan(f.fencedAfterMs!);
        }
      },
    ],
    ["control-plane-outage", (s: Summary) => expect([s.reboots, s.faults[0]!.fencedAfterMs]).toEqual([0, null])],
  ])("scenario %s", async (scenario, check) => {
    const { summary: s, progress } = await demoWithProgress(["--scenario", scenario]);
    try {
      expect(s.invariantViolations).toEqual([]);
      expect(s.faults.every((f) => f.finalState === "healthy")).toBe(true);
      check(s);
    } catch (err) {
      // What happened, for a failure seen only under load.
      (err as Error).message += `\n--- the demo's progress ---\n${progress.slice(-6000)}`;
      throw err;
    }
  });

  it("partition-minority on 5 nodes cuts off 2 (a minority): they fence themselves and rejoin", async () => {
    const s = await demo(["--scenario", "partition-minority", "--nodes", "5"]);
    expect(s.invariantViolations).toEqual([]);
    expect(s.faults).toHaveLength(2);
    for (const f of s.faults) {
      expect(f.selfFenced, f.node).toBe(true);
      expect(f.fencedAfterMs, f.node).not.toBeNull();
      expect(f.rejoinedAfterMs!, f.node).toBeGreaterThan(f.fencedAfterMs!);
      expect(f.finalState).toBe("healthy");
    }
  });

  it("partition-minority on 4 nodes is refused: no group of two is a minority", async () => {
    const r = await runCli(["demo", "--scenario", "partition-minority", "--nodes", "4", "--json"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("partition-minority needs at least 5 nodes");
    expect(r.stdout).toBe("");
  });

  it("rejects an unknown scenario with the list of known ones", async () => {
    const r = await runCli(["demo", "--scenario", "nope", "--json"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unknown scenario "nope"');
  });
});
