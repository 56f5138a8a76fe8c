import { createFenceAgentDevice, FenceErrorCode, isFenceAgentError, powerOffConfirmed, type FenceDevice } from "@fenceline/actuators";
import { describe, expect, it } from "vitest";
import { createSimBmcs, simBmcDevices, SIM_BMC_PASSWORD, type SimBmcTiming } from "../src/bmc/sim-bmc.js";
import { Prng } from "../src/lab/prng.js";
import { VirtualClock } from "@fenceline/testing";

const FAST: SimBmcTiming = {
  agentStartMs: [300, 300],
  sessionMs: [500, 500],
  powerOffMs: [2_000, 2_000],
  powerOnMs: [1_000, 1_000],
  slowMs: [10_000, 10_000],
};

/** A simulated BMC for "m1", the production device code on top, all on a virtual clock. */
function setup(options: { password?: string; timeoutMs?: number; retries?: number } = {}) {
  const clock = new VirtualClock(1_700_000_000_000);
  let power: "on" | "off" = "on";
  const machine = { power: () => power, setPower: async (on: boolean) => void (power = on ? "on" : "off") };
  const rng = new Prng(7);
  const bmcs = createSimBmcs({ clock, random: () => rng.next(), machine: (n) => (n === "m1" ? machine : undefined), timing: FAST });
  const config = simBmcDevices({ timeoutMs: options.timeoutMs ?? 10_000, retries: options.retries ?? 0 }).devices.ipmi!;
  const device: FenceDevice = createFenceAgentDevice("ipmi", config, {
    run: bmcs.run,
    clock,
    readSecret: async () => options.password ?? SIM_BMC_PASSWORD,
  });
  /** Runs `op` while advancing the virtual clock in 100 ms steps. */
  const drive = async <T>(op: Promise<T>): Promise<{ value?: T; error?: unknown; tookMs: number }> => {
    const start = clock.now();
    let settled: { value?: T; error?: unknown } | undefined;
    op.then(
      (value) => (settled = { value }),
      (error: unknown) => (settled = { error }),
    );
    for (let i = 0; i < 2_000 && !settled; i++) {
      clock.advance(100);
      for (let j = 0; j < 5; j++) await new Promise((r) => setImmediate(r));
    }
    return { ...settled!, tookMs: clock.now() - start };
  };
  return { clock, bmcs, device, drive, power: () => power };
}

describe("simulated BMCs behind the production fence agent device", () => {
  it("powers off (the BMC reports it off a while after it took the command), reads it back, and powers on", async () => {
    const { device, drive, power, bmcs, clock } = setup();
    const off = await drive(powerOffConfirmed(device, { node: "m1", deadline: clock.now() + 30_000 }, clock, { progress() {} }));
    expect(off.error).toBeUndefined();
    expect(power()).toBe("off");
    expect(off.value).toContain("Success: Powered OFF");
    // fence_ipmilan's own read-back after the off is the confirmation: no second status run.
    expect(off.value).toMatch(/Executing: [^\n]*chassis power off[\s\S]*Chassis Power is off[\s\S]*Success: Powered OFF/);
    expect(off.value).not.toContain("# fence_ipmilan status");
    // agent start + status session + off session + 2 s until the BMC reports off (polled every 1 s).
    expect(off.tookMs).toBeGreaterThanOrEqual(2_800);
    expect(off.tookMs).toBeLessThan(5_000);
    const on = await drive(device.agent.powerOn({ node: "m1" }));
    expect(on.value?.output).toContain("Success: Powered ON");
    expect(power()).toBe("on");
    expect(bmcs.powerChanges.map((c) => c.to)).toEqual(["off", "on"]);
  });

  it("a BMC that does not answer: Connection timed out after the agent's power_timeout, classified unreachable", async () => {
    const { device, drive, bmcs, power } = setup({ timeoutMs: 8_000 });
    bmcs.setFault("m1", "unreachable", true);
    const r = await drive(device.agent.powerOff({ node: "m1" }));
    expect(isFenceAgentError(r.error, FenceErrorCode.Unreachable)).toBe(true);
    expect((r.error as Error).message).toContain("Connection timed out");
    expect(r.tookMs).toBeGreaterThanOrEqual(5_000);
    expect(power()).toBe("on");
  });

  it("wrong credentials: refused at once, classified auth from the agent's own timestamps", async () => {
    const { device, drive, power } = setup({ password: "wrong" });
    const r = await drive(device.agent.powerOff({ node: "m1" }));
    expect(isFenceAgentError(r.error, FenceErrorCode.Auth)).toBe(true);
    expect((r.error as Error).message).toContain("the BMC refused the IPMI session at once");
    expect(power()).toBe("on");
  });

  it("a slow BMC outlasts the agent's wait: the off fails, and the machine goes off later anyway", async () => {
    const { device, drive, bmcs, power, clock } = setup({ timeoutMs: 8_000 });
    bmcs.setFault("m1", "slow", true);
    const r = await drive(device.agent.powerOff({ node: "m1", deadline: clock.now() + 30_000 }));
    expect(isFenceAgentError(r.error, FenceErrorCode.Failed)).toBe(true);
    expect((r.error as Error).message).toContain("Timed out waiting to power OFF");
    expect(power()).toBe("on");
    await drive(new Promise<void>((resolve) => clock.setTimeout(resolve, 10_000)));
    expect(power()).toBe("off");
  });

  it("a refused power-on fails after the agent's wait; the machine stays off", async () => {
    const { device, drive, bmcs, power, clock } = setup({ timeoutMs: 8_000 });
    await drive(powerOffConfirmed(device, { node: "m1", deadline: clock.now() + 30_000 }, clock, { progress() {} }));
    bmcs.setFault("m1", "power-on-fails", true);
    const r = await drive(device.agent.powerOn({ node: "m1" }));
    expect(isFenceAgentError(r.error, FenceErrorCode.Failed)).toBe(true);
    expect((r.error as Error).message).toContain("Set Chassis Power Control to Up/On failed");
    expect(power()).toBe("off");
  });

  it("an agent killed at the runner's timeout does nothing more", async () => {
    const { device, drive, bmcs, power, clock } = setup({ timeoutMs: 1_000 });
    const r = await drive(device.agent.powerOff({ node: "m1" }));
    expect(isFenceAgentError(r.error, FenceErrorCode.Timeout)).toBe(true);
    await drive(new Promise<void>((resolve) => clock.setTimeout(resolve, 10_000)));
    expect(power()).toBe("on");
    expect(bmcs.powerChanges).toEqual([]);
  });
});
