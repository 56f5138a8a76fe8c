import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_POLICY, type PolicyInput } from "@fenceline/contracts";
import { ipmiDevices, startPowerLab, type PowerLab } from "./harness.js";

/**
 * Power fencing end to end: `fenceline up --fence-devices` runs fence_ipmilan against each
 * machine's ipmi_sim BMC. The safe time is long (the watchdog's 10 s), so only the power fence can
 * confirm fencing within these tests' waits.
 */
const POLICY: PolicyInput = {
  ...DEMO_POLICY,
  version: "power-test",
  unhealthyDurationMs: 1_000,
  agent: { ...DEMO_POLICY.agent, watchdogTimeoutMs: 10_000 },
  fencing: { watchdog: false, fenceAgent: true, timeoutMs: 60_000 },
  remediation: [{ strategy: "Automatic", timeoutMs: 10_000 }],
};

describe("power fencing through fence_ipmilan and ipmi_sim BMCs (fenceline up on real NATS)", () => {
  let lab: PowerLab;
  beforeAll(async () => {
    lab = await startPowerLab({ policy: POLICY, devices: (bmcs) => ipmiDevices(bmcs) });
  }, 90_000);
  afterAll(async () => {
    await lab?.stop();
  }, 60_000);

  it("reads every BMC once at start-up and logs each answer", async () => {
    await lab.waitFor("five start-up answers", () => (lab.log().match(/answers for w-\d: power on/g) ?? []).length === 5, 30_000);
  });

  it("a hung node whose watchdog is broken is powered off through its BMC, and its StatefulSet pod moves once, only after the confirmed power-off", async () => {
    const victim = lab.cluster.replicas().find((r) => r.replica === "db-0")!.runningOn[0]!;
    const bmc = lab.bmcs.get(victim)!;
    const hungAt = Date.now();
    await lab.sim.fleet.hang(victim, { watchdog: "broken" });
    await lab.waitFor("db-0 running on another node", () => lab.cluster.replicas().find((r) => r.replica === "db-0")!.runningOn.some((n) => n !== victim), 60_000);
    const movedAt = Date.now();

    // The BMC really powered the machine off, once.
    expect(bmc.powerChanges.map((c) => c.to)).toEqual(["off"]);
    expect(lab.sim.fleet.status(victim)).toMatchObject({ poweredOff: true, hung: false });
    const poweredOffAt = bmc.powerChanges[0]!.at;

    // The fence actuator's result: confirmed by reading the power state back; its output is in the record, without the password.
    const events = await lab.events(victim);
    const fence = events.find((e) => e.type === "command.result" && e.data.kind === "fence.poweroff");
    expect(fence?.type === "command.result" && fence.data).toMatchObject({ ok: true, facts: { device: "ipmi", power: "off" } });
    const output = fence?.type === "command.result" ? fence.data.output! : "";
    expect(output).toContain("Success: Powered OFF");
    expect(output).toContain("Status: OFF");
    const { readFile } = await import("node:fs/promises");
    expect(output).not.toContain((await readFile(bmc.passwordFile, "utf8")).trim());

    // Nothing moved before the confirmation: the first command that moves workloads comes after it.
    const audit = await lab.audit(victim);
    const confirmed = audit.find((r) => r.reason?.includes("fencing confirmed"));
    expect(confirmed?.reason).toContain("fence agent");
    const firstMove = audit.find((r) => r.commands.some((c) => ["pods.delete", "volumeattachments.delete", "workloads.await-gone"].includes(c.kind) || (c.kind === "taint.add" && c.params.taint.key === "node.kubernetes.io/out-of-service")));
    expect(firstMove!.seq).toBeGreaterThanOrEqual(confirmed!.seq);
    const deletions = lab.cluster.events().filter((e) => e.node === victim && (e.kind === "pod.force-deleted" || e.kind === "volume.force-detached" || e.kind === "volume.detached"));
    expect(deletions.length).toBeGreaterThan(0);
    expect(Math.min(...deletions.map((e) => e.at))).toBeGreaterThanOrEqual(poweredOffAt);

    // Moved once: one new pod for the replica, started once, never two running.
    const since = (kind: string) => lab.cluster.events().filter((e) => e.kind === kind && e.at >= hungAt && e.what.startsWith("pod db-0 "));
    expect(since("pod.created")).toHaveLength(1);
    expect(since("container.started")).toHaveLength(1);
    expect(lab.violations).toEqual([]);
    // Long before the 10 s watchdog alone would have allowed (the safe time counts from the last heartbeat).
    console.log(`hang → db-0 running elsewhere: ${movedAt - hungAt} ms (power off at +${poweredOffAt - hungAt} ms)`);
  }, 90_000);
});
