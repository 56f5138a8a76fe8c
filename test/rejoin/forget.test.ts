import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openMembershipStore } from "@fenceline/bus";
import { Policy } from "@fenceline/contracts";
import { oneJsonDocument, runCli } from "../e2e/cli.js";
import { REJOIN_POLICY, startRejoinLab, type RejoinLab } from "./harness.js";

/**
 * `fenceline forget` end to end on a real nats-server, with the whole control plane and the real
 * agents (simulated machines): a dead node whose agent's contract lets nothing confirm it fenced
 * holds the only remediation slot; another node that dies waits for it; `fenceline forget` (the
 * CLI, as an operator runs it) takes the dead node out of the fleet and the membership view and
 * frees the slot, and the other node is remediated at once.
 */
const POLICY = Policy.parse({ ...REJOIN_POLICY, version: "forget-test", fleet: { ...REJOIN_POLICY.fleet, maxUnhealthy: 1 } });

type NodeRow = {
  node: string;
  state: string;
  guarantee: string;
  guaranteeReason: string;
  contractWeak: boolean;
  membershipVersion: number | null;
};

describe("fenceline forget, on real NATS", () => {
  let lab: RejoinLab;
  beforeAll(async () => {
    lab = await startRejoinLab({ nodes: 5, policy: POLICY });
  }, 60_000);
  afterAll(async () => lab?.stop(), 30_000);

  const nodes = async () => oneJsonDocument<NodeRow[]>(await runCli(["nodes", "--json", "--server", lab.url]));
  const view = async () => (await (await openMembershipStore(lab.nc)).read()).view!;
  const context = (node: string) => lab.control.engine.core.snapshot(node)?.context;

  it("frees the slot of a dead node nothing can confirm fenced, shrinks the membership, and the next node is remediated", async () => {
    // Every agent learned the five-node view and reported a contract the engine counts on.
    await lab.waitFor("every contract heard with the whole fleet's view", async () => {
      const v = await view();
      return (
        v.members.length === 5 &&
        lab.nodes.every((n) => context(n)?.guarantee.timeBased === true && context(n)?.contract?.membershipVersion === v.version)
      );
    });
    const before = await view();
    expect((await nodes()).map((n) => n.guarantee)).toEqual(["watchdog", "watchdog", "watchdog", "watchdog", "watchdog"]);

    // node-5's agent is restarted without a watchdog device (the software fallback): a contract
    // weaker than the policy, which `fenceline nodes` shows.
    const config = lab.fleet.configOf("node-5");
    lab.fleet.reconfigure("node-5", {
      device: "none",
      config: { ...config, watchdog: { ...config.watchdog, fallbackRebootCommand: ["systemctl", "reboot", "-f"] } },
    });
    await lab.fleet.restartAgent("node-5", 200);
    await lab.waitFor("node-5's software contract heard", () => context("node-5")?.contract?.watchdog.kind === "software");
    const weak = (await nodes()).find((n) => n.node === "node-5")!;
    expect(weak).toMatchObject({ guarantee: "none", contractWeak: true });
    expect(weak.guaranteeReason).toMatch(/only the agent's software reboot timer/);

    // node-5 dies for good: fencing starts, but nothing can confirm it; it holds the only slot.
    await lab.fleet.retire("node-5");
    await lab.waitFor("node-5 fencing", () => lab.stateOf("node-5") === "fencing");
    expect(lab.auditOf("node-5").some((r) => r.reason?.includes("not assuming it fenced by time"))).toBe(true);

    // node-4 dies too (its contract is good): the guard refuses it the slot node-5 holds.
    await lab.fleet.crash("node-4");
    await lab.waitFor("node-4 refused a slot", () =>
      lab.auditOf("node-4").some((r) => r.reason?.includes("1 nodes already in remediation (node-5)")),
    );
    expect(lab.stateOf("node-4")).toBe("suspect.requestingSlot");

    // An operator forgets node-5.
    const forget = await runCli(["forget", "node-5", "--reason", "decommissioned: the disk controller died", "--server", lab.url]);
    expect(forget.code, forget.stderr).toBe(0);
    expect(forget.stdout).toMatch(/^node\.forgotten for node-5 recorded \(FL_EVENTS #\d+\)/);
    await lab.waitFor("node-5 forgotten", () => lab.stateOf("node-5") === "forgotten");
    const forgetting = lab.auditOf("node-5").find((r) => r.event.type === "node.forgotten");
    expect(
      forgetting,
      JSON.stringify(lab.auditOf("node-5").map((r) => [r.event.type, r.from, r.to, r.commands.map((c) => c.kind)])),
    ).toMatchObject({ from: "fencing", to: "forgotten", changed: true });
    expect(forgetting!.commands.map((c) => c.kind)).toContain("slot.release");

    // The membership view shrinks: a new version without it, which the agents learn.
    await lab.waitFor("a view without node-5", async () => !(await view()).members.some((m) => m.node === "node-5"));
    const after = await view();
    expect(after.version).toBeGreaterThan(before.version);
    expect(after.members.map((m) => m.node)).toEqual(["node-1", "node-2", "node-3", "node-4"]);
    await lab.waitFor("the live agents report the new view", () =>
      ["node-1", "node-2", "node-3"].every((n) => (context(n)?.contract?.membershipVersion ?? 0) >= after.version),
    );
    const stored = (await lab.events("node-5")).filter((e) => e.type === "node.forgotten");
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ data: { reason: "decommissioned: the disk controller died" } });

    // node-4 gets the freed slot and is fenced (by time: its contract allows it) and remediated.
    await lab.waitFor(
      "node-4 remediated",
      () => ["down", "rejoining", "healthy"].some((s) => lab.stateOf("node-4")?.startsWith(s)),
      30_000,
    );
    expect(lab.auditOf("node-4").some((r) => r.reason?.includes("fencing confirmed: safe time"))).toBe(true);
    const rows = await nodes();
    expect(rows.find((n) => n.node === "node-5")).toMatchObject({ state: "forgotten" });
  }, 120_000);
});
