import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_POLICY, safeTimeOf, Policy, type AuditRecord, type PolicyInput } from "@fenceline/contracts";
import type { IpmiSimBmc } from "@fenceline/sim";
import { ipmiDevices, sleep, startPowerLab, type PowerLab } from "./harness.js";

/**
 * Power fencing end to end: `fenceline up --fence-devices` on a real nats-server runs the real
 * fence_ipmilan against each machine's ipmi_sim BMC. The levels are [ipmi] (15 s), then
 * [watchdog]; the safe time is long (1 s + 0.5 s + 10 s watchdog + 1 s = 12.5 s) so that the
 * two ways of confirming are far apart.
 */
const POLICY: PolicyInput = {
  ...DEMO_POLICY,
  version: "power-e2e",
  unhealthyDurationMs: 1_000,
  agent: { ...DEMO_POLICY.agent, watchdogTimeoutMs: 10_000 },
  fencing: { levels: [{ methods: ["ipmi"], timeoutMs: "15s" }, ["watchdog"]], timeoutMs: "2m" },
  remediation: [{ strategy: "Automatic", timeoutMs: 10_000 }],
};
const SAFE_TIME_MS = safeTimeOf(Policy.parse(POLICY));

const MOVES = ["pods.delete", "workloads.await-gone"];
const movesWorkloads = (r: AuditRecord) =>
  r.commands.some((c) => MOVES.includes(c.kind) || (c.kind === "taint.add" && c.params.taint.key === "node.kubernetes.io/out-of-service"));

describe("power fencing: fence_ipmilan and ipmi_sim BMCs under fenceline up, on real NATS", () => {
  let lab: PowerLab;
  beforeAll(async () => {
    lab = await startPowerLab({ policy: POLICY, devices: (bmcs) => ipmiDevices(bmcs) });
  }, 120_000);
  afterAll(async () => {
    await lab?.stop();
  }, 60_000);

  const replicaNode = (replica: string) => lab.cluster.replicas().find((r) => r.replica === replica)!.runningOn[0]!;
  const movedOff = (replica: string, node: string) => () =>
    lab.cluster
      .replicas()
      .find((r) => r.replica === replica)!
      .runningOn.some((n) => n !== node);
  const allHealthy = async () => {
    const s = await lab.states();
    return lab.nodes.every((n) => s.get(n) === "healthy") && lab.cluster.replicas().every((r) => r.runningOn.length === 1);
  };
  /** The audit records of this episode of the node: from the fault on. */
  const episode = async (node: string, since: number) => (await lab.audit(node)).filter((r) => r.at >= since - 100);
  /** Nothing moved before fencing was confirmed, in the engine's record and in the cluster's truth. */
  const expectNothingMovedBeforeConfirmation = async (node: string, since: number) => {
    const records = await episode(node, since);
    const confirmed = records.find((r) => r.reason?.includes("fencing confirmed"));
    expect(confirmed, "fencing confirmed").toBeDefined();
    const firstMove = records.find(movesWorkloads);
    expect(firstMove!.seq).toBeGreaterThanOrEqual(confirmed!.seq);
    const deletions = lab.cluster
      .events()
      .filter((e) => e.node === node && e.at >= since && /^(pod\.force-deleted|volume\.(force-)?detached)$/.test(e.kind));
    for (const d of deletions) expect(d.at).toBeGreaterThanOrEqual(confirmed!.at);
    return { records, confirmed: confirmed! };
  };
  const podMovedOnce = (replica: string, since: number) => {
    const of = (kind: string) =>
      lab.cluster.events().filter((e) => e.kind === kind && e.at >= since && e.what.startsWith(`pod ${replica} `));
    expect(of("pod.created")).toHaveLength(1);
    expect(of("container.started")).toHaveLength(1);
  };

  it("reads every BMC once at start-up and logs each answer", async () => {
    await lab.waitFor("five start-up answers", () => (lab.log().match(/answers for w-\d: power on/g) ?? []).length === 5, 30_000);
  });

  it("a hung node whose watchdog is broken is powered off, its StatefulSet pod moves once, then it is powered on and rejoins", async () => {
    const victim = replicaNode("db-0");
    const bmc = lab.bmcs.get(victim)!;
    const password = (await readFile(bmc.passwordFile, "utf8")).trim();
    const bootId = lab.sim.fleet.status(victim).bootId;
    const at = Date.now();
    await lab.sim.fleet.hang(victim, { watchdog: "broken" });
    await lab.waitFor("db-0 running on another node", movedOff("db-0", victim), 60_000);
    const movedAfter = Date.now() - at;

    const { records, confirmed } = await expectNothingMovedBeforeConfirmation(victim, at);
    expect(confirmed.reason).toContain("fencing confirmed: fence agent: powered off (level 1/2 [ipmi])");
    expect(bmc.powerChanges[0]?.to).toBe("off");
    expect(confirmed.at).toBeGreaterThanOrEqual(bmc.powerChanges[0]!.at);
    podMovedOnce("db-0", at);

    // The fence actuator's record: the agent's output, read back off, without the password.
    const fence = (await lab.events(victim)).find((e) => e.type === "command.result" && e.data.kind === "fence.poweroff" && e.at >= at);
    expect(fence?.type === "command.result" && fence.data).toMatchObject({
      ok: true,
      facts: { method: "ipmi", device: "ipmi", power: "off" },
    });
    const output = fence?.type === "command.result" ? fence.data.output! : "";
    // Read back off by fence_ipmilan itself after the command (the confirmation; no second status run).
    expect(output).toMatch(/chassis power off[\s\S]*Chassis Power is off[\s\S]*Success: Powered OFF/);
    expect(output).not.toContain(password);

    // Unfencing: powered on again after remediation; it boots and rejoins through re-provisioning.
    await lab.waitFor(`${victim} healthy again`, async () => (await lab.states()).get(victim) === "healthy", 60_000);
    expect(bmc.powerChanges.map((c) => c.to)).toEqual(["off", "on"]);
    const after = await episode(victim, at);
    expect(after.some((r) => r.reason?.includes("unfencing: powering the node on through ipmi so it boots and rejoins"))).toBe(true);
    expect(after.some((r) => r.commands.some((c) => c.kind === "reprovision"))).toBe(true);
    expect(lab.sim.fleet.status(victim).bootId).not.toBe(bootId);
    // Powered on, its boot gate held the kubelet until the engine had moved it on from down (remediated, silent).
    const machineEvents = () => lab.sim.fleet.events.filter((e) => e.node === victim && e.at >= at).map((e) => e.what);
    await lab.waitFor("its boot gate open", () => machineEvents().some((w) => w.startsWith("boot gate open")), 10_000);
    const machine = machineEvents();
    const closed = machine.findIndex((w) => w.startsWith("boot gate closed: the engine says down"));
    const open = machine.findIndex((w) => w.startsWith("boot gate open"));
    expect(machine.indexOf("powered on by its BMC")).toBeGreaterThanOrEqual(0);
    expect(closed).toBeGreaterThan(machine.indexOf("powered on by its BMC"));
    expect(open).toBeGreaterThan(closed);
    expect(records.every((r) => !r.reason?.includes("safe time: silent for"))).toBe(true);
    expect(lab.violations).toEqual([]);
    console.log(`hung node ${victim}: db-0 running elsewhere ${movedAfter} ms after the hang`);
    await lab.waitFor("every node healthy, every replica running once", allHealthy, 60_000);
  }, 180_000);

  it("with IPMI as the first level a crashed node's workload moves well before the safe time", async () => {
    const victim = replicaNode("db-0");
    const at = Date.now();
    await lab.sim.fleet.crash(victim);
    await lab.waitFor("db-0 running on another node", movedOff("db-0", victim), 60_000);
    const movedAfter = Date.now() - at;
    const { confirmed } = await expectNothingMovedBeforeConfirmation(victim, at);
    expect(confirmed.reason).toContain("fencing confirmed: fence agent: powered off");
    // The proof was the power-off read back, not time: it came before the safe time would have.
    const lastSeen = (await episode(victim, at)).find((r) => r.event.type === "heartbeat.missed")!;
    expect(confirmed.at).toBeLessThan(lastSeen.at + SAFE_TIME_MS);
    podMovedOnce("db-0", at);
    console.log(`crashed node ${victim}: db-0 running elsewhere ${movedAfter} ms after the crash (safe time ${SAFE_TIME_MS} ms)`);
    await lab.waitFor("every node healthy, every replica running once", allHealthy, 60_000);
  }, 180_000);

  /**
   * With a fault on the victim's BMC, it crashes (back after 20 s): the IPMI level fails, fencing
   * escalates to the watchdog level, which confirms by the safe time; the workload moves once,
   * nothing before the confirmation. Returns the escalation's reason and the fence result's output.
   */
  const escalatesWith = async (fault: (bmc: IpmiSimBmc, on: boolean) => Promise<void>) => {
    const victim = replicaNode("db-0");
    const bmc = lab.bmcs.get(victim)!;
    const changes = bmc.powerChanges.length;
    await fault(bmc, true);
    const at = Date.now();
    try {
      await lab.sim.fleet.crash(victim, 20_000);
      await lab.waitFor("db-0 running on another node", movedOff("db-0", victim), 60_000);
      const { records, confirmed } = await expectNothingMovedBeforeConfirmation(victim, at);
      const escalation = records.find((r) => r.reason?.includes("escalating to level 2/2 [watchdog]"));
      expect(confirmed.reason).toContain("fencing confirmed: safe time: silent for");
      expect(confirmed.reason).toContain("(level 2/2 [watchdog])");
      expect(confirmed.seq).toBeGreaterThanOrEqual(escalation!.seq);
      expect(bmc.powerChanges.length).toBe(changes);
      podMovedOnce("db-0", at);
      const fence = (await lab.events(victim)).find((e) => e.type === "command.result" && e.data.kind === "fence.poweroff" && e.at >= at);
      return { escalation: escalation!.reason!, output: fence?.type === "command.result" ? fence.data.output! : "" };
    } finally {
      await fault(bmc, false);
      await lab.waitFor("every node healthy, every replica running once", allHealthy, 90_000);
    }
  };

  it("a BMC that does not answer makes the IPMI level fail: fencing escalates to the watchdog level, nothing is powered off", async () => {
    const { escalation } = await escalatesWith((bmc, on) => bmc.faults.unreachable(on));
    expect(escalation).toMatch(
      /fencing level 1\/2 \[ipmi\]: fence\.poweroff \(ipmi\) failed: unreachable: fence_ipmilan off for w-\d \(device ipmi\): the device could not be reached .*Connection timed out/,
    );
  }, 180_000);

  it("wrong credentials give a clear error at once, are not retried, and escalate", async () => {
    const { escalation, output } = await escalatesWith((bmc, on) => bmc.faults.rotatePassword(on ? "changed-on-the-bmc" : null));
    expect(escalation).toContain("fence.poweroff (ipmi) failed: auth: fence_ipmilan off for");
    expect(escalation).toContain("the BMC refused the IPMI session at once: wrong user or password");
    expect(output.match(/# fence_ipmilan off/g)).toHaveLength(1);
    await sleep(500);
    expect(lab.violations).toEqual([]);
  }, 180_000);
});
