import { describe, expect, inject, it } from "vitest";
import { runCli } from "../e2e/cli.js";

// `fenceline bench recovery --kubernetes real`, small: two Fenceline crashes at once and one
// Kubernetes crash, on the shared control plane, with a horizon below Kubernetes' own 350 s
// (so its StatefulSet pod is "never" back by construction). Shape and safety only: the figures
// are the benchmark's to print, not a test's to assert.
describe("bench recovery --kubernetes real", () => {
  it("prints both models as the last stdout line, with no invariant violation", async () => {
    const r = await runCli(
      [
        "bench",
        "recovery",
        "--kubernetes",
        "real",
        "--json",
        "--kubeconfig",
        inject("kubeTest").kube.kubeconfig,
        "--cases",
        "2",
        "--concurrent",
        "2",
        "--nodes",
        "5",
        "--kubernetes-cases",
        "1",
        "--horizon",
        "0.75",
      ],
      { timeoutMs: 240_000 },
    );
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const last = r.stdout.trim().split("\n").at(-1)!;
    const result = JSON.parse(last) as { kubernetesVersion: string; models: Array<Record<string, unknown>> };
    expect(result.kubernetesVersion).toBe(inject("kubeTest").kube.version);
    expect(result.models.map((m) => m.name)).toEqual(["fenceline", "kubernetes"]);
    for (const m of result.models) {
      for (const key of ["p50Ms", "p99Ms", "maxMs", "neverRecovered", "violations", "crashes"])
        expect(m, `${m.name}.${key}`).toHaveProperty(key);
      expect(m.violations, `${m.name} violations\n${r.stderr.slice(-3000)}`).toBe(0);
    }
    const [fenceline, kubernetes] = result.models as [Record<string, number | null>, Record<string, number | null>];
    expect(fenceline.crashes).toBe(2);
    expect(fenceline.neverRecovered).toBe(0);
    expect(fenceline.safeTimeMs).toBe(22_000);
    expect(typeof fenceline.overFloorP50Ms).toBe("number");
    expect(kubernetes.crashes).toBe(1);
    // Below node-monitor-grace-period + the 300 s toleration nothing has even been evicted.
    expect(kubernetes.neverRecovered).toBe(1);
    expect(kubernetes.p50Ms).toBeNull();
  }, 300_000);
});
