import { createEvent } from "@fenceline/contracts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REJOIN_POLICY, sleep, startRejoinLab, type RejoinLab } from "./harness.js";

/**
 * Re-provisioning that goes wrong: a provisioner that keeps failing (retried with backoff, then
 * the operator state, with the reason and the scripts' output on record, and a way out), and a
 * node that vanishes while it is being re-provisioned (contiv issue #158: it must not end in a
 * dead end; it rejoins when it is back).
 */

let lab: RejoinLab;
beforeAll(async () => {
  lab = await startRejoinLab({ nodes: 5 });
}, 40_000);
afterAll(async () => {
  await lab?.stop();
}, 20_000);

const reprovisions = (node: string, since: number) =>
  lab.auditOf(node, since).flatMap((r) => r.commands.filter((c) => c.kind === "reprovision"));

describe("re-provisioning failures", () => {
  it("a provisioning failure is retried with backoff, then escalates to the operator state with the reason in the audit; a reset after the fix rejoins it", async () => {
    const node = "node-3";
    const { reprovisionAttempts, reprovisionBackoffMs } = REJOIN_POLICY.rejoin;
    await lab.failProvisioning(node);
    const t0 = Date.now();
    await lab.fleet.reboot(node);
    await lab.waitFor(`${node} in the operator state`, () => lab.stateOf(node) === "operator", 20_000);

    const commands = reprovisions(node, t0);
    expect(commands.map((c) => c.params.attempt)).toEqual([1, 2, 3]);
    const tries = (await lab.markers(node, t0)).filter((m) => m.step === "provision-start");
    expect(tries).toHaveLength(reprovisionAttempts);
    // Backoff doubles: ≥ 300 ms before the 2nd attempt, ≥ 600 ms before the 3rd.
    expect(tries[1]!.at - tries[0]!.at).toBeGreaterThanOrEqual(reprovisionBackoffMs);
    expect(tries[2]!.at - tries[1]!.at).toBeGreaterThanOrEqual(2 * reprovisionBackoffMs);
    const reasons = lab
      .auditOf(node, t0)
      .map((r) => r.reason ?? "")
      .join("\n");
    expect(reasons).toContain("reprovision failed: provision failed; re-provisioning attempt 1 failed; retrying in 300ms");
    expect(reasons).toContain("re-provisioning attempt 2 failed; retrying in 600ms");
    expect(reasons).toContain(`operator required: re-provisioning failed ${reprovisionAttempts} times`);
    expect(lab.auditOf(node, t0).at(-1)).toMatchObject({ to: "operator", event: { type: "command.result" } });
    // The scripts' output is kept with each failed result.
    const failures = (await lab.events(node)).filter((e) => e.type === "command.result" && e.data.kind === "reprovision" && !e.data.ok);
    expect(failures).toHaveLength(reprovisionAttempts);
    for (const f of failures) {
      expect(f.type === "command.result" && f.data.reason).toBe("provision failed");
      expect(f.type === "command.result" && f.data.output).toMatch(/site\.yml failed on node-3: disk full \(test\)[\s\S]*exit 3/);
    }
    // The machine is fine otherwise: it stays in operator (no loop), until a human acts.
    await sleep(1_000);
    expect(lab.stateOf(node)).toBe("operator");
    expect(reprovisions(node, t0)).toHaveLength(reprovisionAttempts);

    await lab.fixProvisioning(node);
    const resetAt = Date.now();
    await lab.publish(
      createEvent("operator.reset", {
        id: `reset:${node}:${resetAt}`,
        node,
        at: resetAt,
        source: "operator:test",
        data: { reason: "disk replaced" },
      }),
    );
    await lab.waitFor(`${node} healthy after the reset`, () => lab.stateOf(node) === "healthy", 15_000);
    const after = reprovisions(node, resetAt);
    expect(after).toHaveLength(1);
    expect(after[0]!.params.reason).toBe("operator reset: disk replaced");
    expect((await lab.markers(node, resetAt)).map((m) => m.step)).toEqual(["cleanup", "provision-start", "provision"]);
  });

  /** Reboots `node`, crashes it while its (slow) re-provisioning runs, and waits until it is healthy again. */
  async function interruptProvisioning(node: string) {
    // The first provisioning takes 4 s: the node is back (1.5 s down) long before it ends.
    await lab.slowProvisioning(node, 4);
    const t0 = Date.now();
    await lab.fleet.reboot(node);
    await lab.waitFor(
      `${node} provisioning started`,
      async () => (await lab.markers(node, t0)).some((m) => m.step === "provision-start"),
      10_000,
    );
    const bootBefore = lab.fleet.status(node).bootId;
    const crashedAt = Date.now();
    await lab.fleet.crash(node, 1_500);
    await lab.waitFor(`${node} back`, () => lab.fleet.status(node).power === "up" && lab.fleet.status(node).bootId !== bootBefore, 5_000);
    const backAt = Date.now();
    await lab.waitFor(
      `${node} healthy`,
      () => lab.stateOf(node) === "healthy" && lab.auditOf(node, backAt).some((r) => r.changed && r.to === "healthy"),
      20_000,
    );
    const healthyAt = lab.auditOf(node, backAt).find((r) => r.changed && r.to === "healthy")!.at;
    // Let the provisioner finish whatever is still queued, so the markers are complete.
    await lab.waitFor(
      `${node} provisioning finished`,
      async () => {
        const m = await lab.markers(node, t0);
        return m.filter((x) => x.step === "provision").length === m.filter((x) => x.step === "provision-start").length;
      },
      15_000,
    );
    return { t0, crashedAt, backAt, healthyAt, bootBefore, markers: await lab.markers(node, t0) };
  }

  it("a node that vanishes while it is being re-provisioned is not left in a dead end: it rejoins, re-provisioned again, when it comes back", async () => {
    const node = "node-4";
    const run = await interruptProvisioning(node);
    const trail = lab.auditOf(node, run.crashedAt);
    expect(trail.some((r) => r.reason?.includes("the node went silent mid-rejoin: suspect again"))).toBe(true);
    const again = reprovisions(node, run.crashedAt);
    expect(again.map((c) => c.params.reason)).toContain(`rebooted (boot id ${run.bootBefore} → ${lab.fleet.status(node).bootId})`);
    // The cleanup and provision that followed the return did run.
    const afterReturn = run.markers.filter((m) => m.at >= run.backAt);
    expect(afterReturn.map((m) => m.step)).toEqual(expect.arrayContaining(["cleanup", "provision-start", "provision"]));
    expect(lab.stateOf(node)).toBe("healthy");
  });

  /**
   * After the node comes back, the new re-provisioning is "attempt 1" again; the late success of
   * the interrupted attempt must not count for it (results echo the re-provisioning ticket).
   */
  it("it is declared healthy only after a provisioning started after its return has finished", async () => {
    const node = "node-5";
    // Every provisioning of this node takes a second, so "healthy before it finished" is unmistakable.
    await lab.delayProvisioning(node, 1);
    const run = await interruptProvisioning(node);
    const startedAfterReturn = run.markers.find((m) => m.step === "provision-start" && m.at >= run.backAt);
    const finished = startedAfterReturn && run.markers.find((m) => m.step === "provision" && m.at >= startedAfterReturn.at);
    expect(finished, JSON.stringify(run)).toBeDefined();
    expect(run.healthyAt).toBeGreaterThanOrEqual(finished!.at);
  });
});
