import { systemClock, type FenceAgent, type FenceTarget } from "@fenceline/contracts";
import { describe, expect, it } from "vitest";
import { createActuator } from "../src/actuator.js";
import type { FenceDevice } from "../src/fence-agents/device.js";
import { FenceAgentError, FenceErrorCode } from "../src/fence-agents/errors.js";
import { createFenceHandlers } from "../src/fence-handlers.js";
import { command, resultOf } from "./helpers.js";

/** An in-memory BMC: power goes off `offAfterReads` status reads after `off`; every call is logged. */
function memoryBmc(options: { nodes?: string[]; offAfterReads?: number; fail?: FenceAgentError } = {}) {
  const calls: string[] = [];
  let power: "on" | "off" = "on";
  let readsLeft = Infinity;
  const agent: FenceAgent = {
    covers: (node) => (options.nodes ?? ["n1"]).includes(node),
    async powerOff(target: FenceTarget) {
      calls.push(`off ${target.node}`);
      if (options.fail) throw options.fail;
      readsLeft = options.offAfterReads ?? 0;
      return { output: "Success: Powered OFF" };
    },
    async powerOn(target) {
      calls.push(`on ${target.node}`);
      power = "on";
      return { output: "Success: Powered ON" };
    },
    async status(target) {
      calls.push(`status ${target.node}`);
      if (readsLeft-- <= 0) power = "off";
      return { output: `Status: ${power.toUpperCase()}`, power };
    },
  };
  return { agent, calls, power: () => power };
}

const deviceOf = (name: string, agent: FenceAgent, confirmWithinMs = 2_000): FenceDevice => ({ name, agent, confirmWithinMs, pollMs: 10 });

function fenceActuator(devices: FenceDevice[]) {
  const actuator = createActuator({ name: "fence", handlers: createFenceHandlers({ devices, clock: systemClock }), clock: systemClock });
  let progressed = 0;
  const run = async (node = "n1", params: { device?: string; hostGroup?: string } = {}, now = Date.now()) =>
    resultOf(await actuator.execute(command("fence.poweroff", params, { node, now }), { progress: () => progressed++ }));
  const powerOn = async (node = "n1", params: { device?: string; hostGroup?: string } = {}, now = Date.now()) =>
    resultOf(await actuator.execute(command("fence.poweron", params, { node, now }), { progress: () => progressed++ }));
  return { run, powerOn, progressed: () => progressed };
}

describe("fence actuator", () => {
  it("powers the node off, then reads the power state back until it says off", async () => {
    const bmc = memoryBmc({ offAfterReads: 2 });
    const { run, progressed } = fenceActuator([deviceOf("ipmi", bmc.agent)]);
    const result = await run();
    expect(result.data).toMatchObject({ ok: true, kind: "fence.poweroff", facts: { method: "power", device: "ipmi", power: "off" } });
    expect(bmc.calls).toEqual(["off n1", "status n1", "status n1", "status n1"]);
    expect(result.data.output).toBe(["Success: Powered OFF", "Status: ON", "Status: ON", "Status: OFF"].join("\n"));
    expect(progressed()).toBeGreaterThanOrEqual(3);
  });

  it("takes the agent's own read-back after the off as the confirmation, and reads no second time", async () => {
    const bmc = memoryBmc({ offAfterReads: 2 });
    const readBack: FenceAgent = { ...bmc.agent, powerOff: async (t) => ({ ...(await bmc.agent.powerOff(t)), power: "off" as const }) };
    const { run } = fenceActuator([deviceOf("ipmi", readBack)]);
    const result = await run();
    expect(result.data).toMatchObject({ ok: true, facts: { device: "ipmi", power: "off" } });
    expect(bmc.calls).toEqual(["off n1"]);
  });

  it("fails when the power state never reads off: an accepted power-off is not proof", async () => {
    const bmc = memoryBmc({ offAfterReads: Infinity });
    const { run } = fenceActuator([deviceOf("ipmi", bmc.agent, 100)]);
    const result = await run();
    expect(result.data.ok).toBe(false);
    expect(result.data.reason).toMatch(
      /^not-confirmed: device ipmi: power-off of n1 was accepted but the power state still reads "on" after 100 ms$/,
    );
    expect(result.data.facts).toMatchObject({ device: "ipmi", error: "not-confirmed" });
    expect(result.data.output).toContain("Status: ON");
  });

  it("reports a device's typed error as the reason, with its output", async () => {
    const bmc = memoryBmc({
      fail: new FenceAgentError(
        FenceErrorCode.Auth,
        "fence_ipmilan off for n1 (device ipmi): the BMC refused the IPMI session",
        "Error: Unable to establish IPMI v2 / RMCP+ session",
      ),
    });
    const { run } = fenceActuator([deviceOf("ipmi", bmc.agent)]);
    const result = await run();
    expect(result.data).toMatchObject({ ok: false, facts: { device: "ipmi", error: "auth" } });
    expect(result.data.reason).toBe("auth: fence_ipmilan off for n1 (device ipmi): the BMC refused the IPMI session");
    expect(result.data.output).toBe("Error: Unable to establish IPMI v2 / RMCP+ session");
  });

  it("needs every device of the node to succeed, in order (two PDUs feeding one machine)", async () => {
    const a = memoryBmc();
    const b = memoryBmc({ fail: new FenceAgentError(FenceErrorCode.Unreachable, "pdu-b does not answer") });
    const { run } = fenceActuator([deviceOf("pdu-a", a.agent), deviceOf("pdu-b", b.agent)]);
    const result = await run();
    expect(a.calls).toEqual(["off n1", "status n1"]);
    expect(b.calls).toEqual(["off n1"]);
    expect(result.data).toMatchObject({ ok: false, facts: { device: "pdu-b", error: "unreachable" } });

    const both = fenceActuator([deviceOf("pdu-a", memoryBmc().agent), deviceOf("pdu-b", memoryBmc().agent)]);
    expect((await both.run()).data).toMatchObject({ ok: true, facts: { device: "pdu-a,pdu-b" } });
  });

  it("powers off through the device the command names (a fencing level's method), echoing it", async () => {
    const a = memoryBmc();
    const b = memoryBmc();
    const { run } = fenceActuator([deviceOf("ipmi", a.agent), deviceOf("pdu", b.agent)]);
    const result = await run("n1", { device: "pdu", hostGroup: "db" });
    expect(result.data).toMatchObject({ ok: true, facts: { method: "pdu", device: "pdu", power: "off" } });
    expect(a.calls).toEqual([]);
    expect(b.calls).toEqual(["off n1", "status n1"]);
    const unknown = await run("n1", { device: "pdu-z" });
    expect(unknown.data).toMatchObject({
      ok: false,
      reason: "invalid-config: no fence device named pdu-z is configured (devices: ipmi, pdu)",
      facts: { method: "pdu-z", error: "invalid-config" },
    });
  });

  it("powers the node on again (unfencing), and then refuses a power-off issued before that power-on (a late redelivery)", async () => {
    const bmc = memoryBmc();
    const { run, powerOn } = fenceActuator([deviceOf("ipmi", bmc.agent)]);
    const issued = Date.now();
    expect((await run("n1", {}, issued)).data.ok).toBe(true);
    const on = await powerOn("n1", { device: "ipmi" }, issued + 10);
    expect(on.data).toMatchObject({ ok: true, kind: "fence.poweron", facts: { method: "ipmi", device: "ipmi", power: "on" } });
    expect(on.data.output).toBe("Success: Powered ON");
    expect(bmc.power()).toBe("on");
    const late = await run("n1", {}, issued);
    expect(late.data).toMatchObject({ ok: false, facts: { error: "stale" } });
    expect(late.data.reason).toMatch(/^stale: a power-on issued later \(at \d+\) was already carried out for n1$/);
    expect(bmc.calls.filter((c) => c.startsWith("off"))).toHaveLength(1);
    // A power-off issued after the power-on is a new fencing: carried out.
    expect((await run("n1", {}, issued + 20)).data.ok).toBe(true);
  });

  it("fails at once for a node no device covers", async () => {
    const bmc = memoryBmc({ nodes: ["n1"] });
    const { run } = fenceActuator([deviceOf("ipmi", bmc.agent)]);
    const result = await run("n2");
    expect(result.data).toMatchObject({ ok: false, reason: "invalid-config: no fence device is configured for n2" });
    expect(bmc.calls).toEqual([]);
  });
});
