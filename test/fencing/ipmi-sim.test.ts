import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  FenceDeviceConfig,
  FenceErrorCode,
  createFenceAgentDevice,
  createSecretReader,
  isFenceAgentError,
  powerOffConfirmed,
  type FenceDevice,
} from "@fenceline/actuators";
import { systemClock } from "@fenceline/contracts";
import { ipmitool, startIpmiSimBmc, type IpmiSimBmc } from "@fenceline/sim";

/** A machine as simple as it gets: its power, and every change. */
function machine() {
  let power: "on" | "off" = "on";
  const changes: string[] = [];
  return {
    power: () => power,
    async setPower(on: boolean) {
      power = on ? "on" : "off";
      changes.push(power);
    },
    changes,
  };
}

const bmcs: IpmiSimBmc[] = [];
afterEach(async () => {
  await Promise.all(bmcs.splice(0).map((b) => b.stop()));
});

async function bmcFor(name: string) {
  const m = machine();
  const bmc = await startIpmiSimBmc({ name, machine: m });
  bmcs.push(bmc);
  return { bmc, machine: m };
}

/** fence_ipmilan against the BMC, through the production adapter. */
function ipmiDevice(bmc: IpmiSimBmc, overrides: Record<string, unknown> = {}, passwordFile = bmc.passwordFile): FenceDevice {
  const config = FenceDeviceConfig.parse({
    agent: "fence_ipmilan",
    params: { ...bmc.fenceParams, power_wait: 0 },
    password: { file: passwordFile },
    nodes: { [bmc.name]: {} },
    timeoutMs: 10_000,
    retryDelayMs: 200,
    confirmWithinMs: 10_000,
    pollMs: 200,
    ...overrides,
  });
  return createFenceAgentDevice("ipmi", config, { readSecret: createSecretReader() });
}

const progress = { progress() {} };

/** Every process whose arguments contain `text`. */
async function processesWith(text: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await readdir("/proc")).filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).replaceAll("\0", " ");
      if (cmdline.includes(text)) found.push(`${pid}: ${cmdline}`);
    } catch {
      // gone
    }
  }
  return found;
}

describe("fence_ipmilan against ipmi_sim (a real IPMI-over-LAN peer)", () => {
  it("powers the machine off, reads it back off, and powers it on again", async () => {
    const { bmc, machine: m } = await bmcFor("node-a");
    const device = ipmiDevice(bmc);
    expect((await device.agent.status({ node: "node-a" })).power).toBe("on");

    const transcript = await powerOffConfirmed(device, { node: "node-a", deadline: Date.now() + 30_000 }, systemClock, progress);
    expect(m.power()).toBe("off");
    expect(m.changes).toEqual(["off"]);
    expect(transcript).toMatch(/# fence_ipmilan off \(attempt 1\/3\): exit 0 after [\d.]+ s\n[\s\S]*Success: Powered OFF/);
    // The real agent reads the state back itself after the off (verbose: ipmitool's answer), and
    // that read-back is the confirmation: Fenceline runs no second status.
    expect(transcript).toMatch(/Executing: [^\n]*chassis power off[\s\S]*Chassis Power is off[\s\S]*Success: Powered OFF/);
    expect(transcript).not.toContain("# fence_ipmilan status");
    // What any IPMI client sees.
    const seen = await ipmitool({ ...bmc, password: (await readFile(bmc.passwordFile, "utf8")).trim() }, ["chassis", "power", "status"]);
    expect(seen.output).toContain("Chassis Power is off");

    const on = await device.agent.powerOn({ node: "node-a" });
    expect(on.output).toContain("Success: Powered ON");
    expect(m.power()).toBe("on");
    expect((await device.agent.status({ node: "node-a" })).power).toBe("on");
    expect(bmc.powerChanges.map((c) => c.to)).toEqual(["off", "on"]);
  });

  it("keeps the password out of every process's arguments and out of the output", async () => {
    const { bmc } = await bmcFor("node-b");
    const password = (await readFile(bmc.passwordFile, "utf8")).trim();
    // A BMC that does not answer keeps fence_ipmilan and its ipmitool running long enough to look.
    await bmc.faults.unreachable(true);
    const device = ipmiDevice(bmc, { params: { ...bmc.fenceParams, power_timeout: 30 }, timeoutMs: 5_000, retries: 0 });
    const running = device.agent.status({ node: "node-b" }).catch((e: unknown) => e);
    let agents: string[] = [];
    for (let i = 0; i < 40 && agents.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      agents = await processesWith(`-p ${bmc.port}`);
    }
    expect(agents.length).toBeGreaterThan(0); // ipmitool is running now…
    expect(agents.join("\n")).toContain("-P XXXX"); // …and has masked the -P that fence_ipmilan gave it
    expect(await processesWith(password)).toEqual([]);
    const err = await running;
    expect(isFenceAgentError(err)).toBe(true);
    expect((err as Error).message).not.toContain(password);
    expect((err as { output: string }).output).not.toContain(password);
  });

  it("says clearly that the credentials are wrong, at once, and does not retry", async () => {
    const { bmc, machine: m } = await bmcFor("node-c");
    const wrong = join(bmc.passwordFile + "-wrong");
    await writeFile(wrong, "not-the-password\n");
    const device = ipmiDevice(bmc, { retries: 2 }, wrong);
    const started = Date.now();
    const err = await device.agent.powerOff({ node: "node-c" }).catch((e: unknown) => e);
    expect(isFenceAgentError(err, FenceErrorCode.Auth)).toBe(true);
    expect((err as Error).message).toMatch(
      /^fence_ipmilan off for node-c \(device ipmi\): the BMC refused the IPMI session at once: wrong user or password/,
    );
    expect((err as { output: string }).output.match(/# fence_ipmilan off/g)).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(m.power()).toBe("on");
  });

  it("a password rotated on the BMC but not in the configuration is refused, and accepted again once set back", async () => {
    const { bmc } = await bmcFor("node-i");
    const device = ipmiDevice(bmc, { retries: 0 });
    await bmc.faults.rotatePassword("rotated-by-an-admin");
    const err = await device.agent.status({ node: "node-i" }).catch((e: unknown) => e);
    expect(isFenceAgentError(err, FenceErrorCode.Auth)).toBe(true);
    await bmc.faults.rotatePassword(null);
    expect((await device.agent.status({ node: "node-i" })).power).toBe("on");
  });

  it("says a BMC that does not answer is unreachable, within the device's timeout", async () => {
    const { bmc, machine: m } = await bmcFor("node-d");
    await bmc.faults.unreachable(true);
    const device = ipmiDevice(bmc, { timeoutMs: 3_000, retries: 1, retryDelayMs: 100 });
    const started = Date.now();
    const err = await device.agent.powerOff({ node: "node-d" }).catch((e: unknown) => e);
    expect(isFenceAgentError(err, FenceErrorCode.Unreachable)).toBe(true);
    expect((err as Error).message).toMatch(
      /^fence_ipmilan off for node-d \(device ipmi\): the device could not be reached \(exit 1 after [\d.]+ s\): Connection timed out \(2 attempts\)$/,
    );
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(m.power()).toBe("on");
    // Back again: it answers.
    await bmc.faults.unreachable(false);
    expect((await device.agent.status({ node: "node-d" })).power).toBe("on");
  });

  it("kills an agent that outlives the device's timeout, and its ipmitool with it", async () => {
    const { bmc, machine: m } = await bmcFor("node-g");
    await bmc.faults.unreachable(true);
    // The agent's own wait set longer than ours: our timeout is what ends it.
    const device = ipmiDevice(bmc, { params: { ...bmc.fenceParams, power_timeout: 60 }, timeoutMs: 2_000, retries: 0 });
    const started = Date.now();
    const err = await device.agent.powerOff({ node: "node-g" }).catch((e: unknown) => e);
    expect(isFenceAgentError(err, FenceErrorCode.Timeout)).toBe(true);
    expect((err as Error).message).toMatch(
      /^fence_ipmilan off for node-g \(device ipmi\): no answer within [\d.]+ m?s; the agent was killed/,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    await new Promise((r) => setTimeout(r, 200));
    expect(await processesWith(`-p ${bmc.port}`)).toEqual([]);
    expect(m.power()).toBe("on");
  });

  it("waits for a slow BMC until the power really reads off", async () => {
    const { bmc, machine: m } = await bmcFor("node-e");
    bmc.faults.slow(1_500);
    const device = ipmiDevice(bmc, { retries: 0 });
    const started = Date.now();
    const transcript = await powerOffConfirmed(device, { node: "node-e", deadline: Date.now() + 30_000 }, systemClock, progress);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_500);
    expect(m.power()).toBe("off");
    expect(transcript).toContain("Success: Powered OFF");
    // fence_ipmilan's own read-back saw it still on, then off.
    expect(transcript).toMatch(/chassis power off[\s\S]*Chassis Power is on[\s\S]*Chassis Power is off[\s\S]*Success: Powered OFF/);
  });

  it("reports an off the BMC took but did not carry out in the agent's time as failed (the BMC may still power off later)", async () => {
    const { bmc, machine: m } = await bmcFor("node-h");
    bmc.faults.slow(2_500);
    const device = ipmiDevice(bmc, { params: { ...bmc.fenceParams, power_wait: 0, power_timeout: 1 }, retries: 0 });
    const err = await powerOffConfirmed(device, { node: "node-h", deadline: Date.now() + 30_000 }, systemClock, progress).catch(
      (e: unknown) => e,
    );
    expect(isFenceAgentError(err, FenceErrorCode.Failed)).toBe(true);
    expect((err as Error).message).toMatch(
      /^fence_ipmilan off for node-h \(device ipmi\): the device took the command but the power state did not change .*Timed out waiting to power OFF/,
    );
    expect(m.power()).toBe("on");
    await new Promise((r) => setTimeout(r, 2_500));
    expect(m.power()).toBe("off");
  });

  it("reports a power-on the BMC refuses as a failure", async () => {
    const { bmc, machine: m } = await bmcFor("node-f");
    const device = ipmiDevice(bmc, { retries: 0, timeoutMs: 6_000 });
    await powerOffConfirmed(device, { node: "node-f", deadline: Date.now() + 30_000 }, systemClock, progress);
    await bmc.faults.failPowerOn(true);
    const err = await device.agent.powerOn({ node: "node-f" }).catch((e: unknown) => e);
    expect(isFenceAgentError(err, FenceErrorCode.Failed)).toBe(true);
    expect((err as Error).message).toMatch(
      /^fence_ipmilan on for node-f \(device ipmi\): the device took the command but the power state did not change/,
    );
    expect(m.power()).toBe("off");
    await bmc.faults.failPowerOn(false);
    await device.agent.powerOn({ node: "node-f" });
    expect(m.power()).toBe("on");
  });
});
