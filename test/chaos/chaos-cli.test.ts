import { describe, expect, it } from "vitest";
import { oneJsonDocument, runCli } from "../e2e/cli.js";

type ChaosJson = {
  seeds: number;
  failures: Array<{ seed: number; invariant: string; node?: string; detail: string; replay: string }>;
  faultsInjected: number;
  elapsedMs: number;
};

/**
 * The chaos lab as CI runs it, through the built CLI (`pnpm exec turbo run build` first): 500
 * seeds of randomized faults over the whole system with every invariant checked.
 */
describe("fenceline chaos", () => {
  it("500 seeds: every invariant holds on every seed", async () => {
    const r = await runCli(["chaos", "--seeds", "500", "--json"], { timeoutMs: 600_000 });
    const out = oneJsonDocument<ChaosJson>(r);
    expect(out.seeds).toBe(500);
    expect(out.faultsInjected).toBeGreaterThan(500);
    expect(out.elapsedMs).toBeGreaterThan(0);
    for (const f of out.failures) expect(f.replay).toBe(`npm run -s fenceline -- chaos --seed ${f.seed}`);
    expect(r.code).toBe(out.failures.length === 0 ? 0 : 1);
    expect(out.failures.map((f) => `seed ${f.seed}: ${f.invariant} on ${f.node}: ${f.detail}\n  ${f.replay}`).join("\n")).toBe("");
  }, 600_000);

  it("reports a deliberately broken machine, and its replay command reproduces the violation with the node's audit trail", async () => {
    const r = await runCli(
      ["chaos", "--seeds", "8", "--broken", "safe-time", "--kinds", "crash,network-loss,partition-minority", "--json"],
      { timeoutMs: 120_000 },
    );
    expect(r.code).toBe(1);
    const out = oneJsonDocument<ChaosJson>(r);
    expect(out.failures.length).toBeGreaterThan(0);
    const first = out.failures.find((f) => f.invariant === "remediation-before-fencing")!;
    expect(first.replay).toBe(
      `npm run -s fenceline -- chaos --seed ${first.seed} --broken safe-time --kinds crash,network-loss,partition-minority`,
    );

    const replay = await runCli(first.replay.replace("npm run -s fenceline -- ", "").split(" "), { timeoutMs: 60_000 });
    expect(replay.code).toBe(1);
    expect(replay.stdout).toContain(`remediation-before-fencing on ${first.node}`);
    expect(replay.stdout).toContain(`trail of ${first.node}`);
    expect(replay.stdout).toMatch(/\[audit #\d+\] .*fencing/);
    expect(replay.stdout).toContain(`replay: ${first.replay}`);
  }, 180_000);

  it("rejects an unknown broken machine without running anything", async () => {
    const r = await runCli(["chaos", "--broken", "nope"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown broken machine "nope"');
  });
});
