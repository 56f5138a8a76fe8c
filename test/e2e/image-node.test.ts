import { execFileSync } from "node:child_process";
import { ENGINE_NODE_FLAGS } from "@fenceline/engine";
import { IMAGE_NODE_VERSION, ensureNodeRuntime } from "@fenceline/toolchain";
import { describe, expect, it } from "vitest";
import { oneJsonDocument, runCli } from "./cli.js";

type Summary = {
  faults: Array<{ kind: string; finalState: string; workloadsRecoveredAfterMs: number | null }>;
  invariantViolations: unknown[];
};

/**
 * The tests run on the machine's Node.js (20 here); deploy/Dockerfile's images run Node.js 24. The
 * whole system once more on the images' Node.js: the demo, started as the engine image starts
 * the CLI (its ENTRYPOINT's Node.js flags).
 */
describe(`the product on the images' Node.js (${IMAGE_NODE_VERSION})`, () => {
  it("runs the demo: three faults recovered, no workload ever on two nodes", async () => {
    const node = await ensureNodeRuntime();
    expect(execFileSync(node, ["--version"], { encoding: "utf8" }).trim()).toBe(`v${IMAGE_NODE_VERSION}`);
    // The engine image's ENTRYPOINT flags (packages/engine/test/node-flags.test.ts holds them equal).
    const result = await runCli(["demo", "--json"], { node, nodeFlags: [...ENGINE_NODE_FLAGS], timeoutMs: 120_000 });
    expect(result.code, result.stderr.slice(-3000)).toBe(0);
    const s = oneJsonDocument<Summary>(result);
    expect(s.invariantViolations).toEqual([]);
    expect(s.faults.map((f) => f.kind).sort()).toEqual(["crash", "network-loss", "reboot"]);
    for (const f of s.faults) {
      expect(f.finalState).toBe("healthy");
      expect(f.workloadsRecoveredAfterMs).not.toBeNull();
    }
  }, 300_000);
});
