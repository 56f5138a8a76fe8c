import { describe, expect, it } from "vitest";
import { LAB_POLICY } from "../src/index.js";
import { startFiveNodeFleet } from "./fleet-fixture.js";

const watchdogMs = LAB_POLICY.agent.watchdogTimeoutMs;

describe("SimFleet: hangs and BMC power control", () => {
  it("a hang with a working watchdog: nothing runs, the power stays on, the watchdog resets it and it boots again", async () => {
    const { fleet, run, runningOn } = await startFiveNodeFleet();
    await fleet.hang("node-5", { watchdog: "works" });
    expect(runningOn("node-5")).toEqual([]);
    expect(fleet.status("node-5")).toMatchObject({ power: "down", hung: true, boots: 1 });
    expect(fleet.powerState("node-5")).toBe("on");
    expect(fleet.reachesControlPlane("node-5")).toBe(false);
    await run(watchdogMs + 1_500);
    expect(fleet.status("node-5")).toMatchObject({ power: "up", hung: false, boots: 2, resets: 1 });
    await fleet.stop();
  });

  it("a hang with a broken watchdog lasts until its BMC powers it off and on; only then does it boot", async () => {
    const { fleet, run } = await startFiveNodeFleet();
    await fleet.hang("node-5", { watchdog: "broken" });
    await run(3 * watchdogMs);
    expect(fleet.status("node-5")).toMatchObject({ power: "down", hung: true, boots: 1, resets: 0 });
    expect(fleet.powerState("node-5")).toBe("on");
    await fleet.powerOff("node-5");
    expect(fleet.powerState("node-5")).toBe("off");
    expect(fleet.status("node-5")).toMatchObject({ hung: false, poweredOff: true });
    await run(5_000);
    expect(fleet.status("node-5").boots).toBe(1);
    await fleet.powerOn("node-5");
    expect(fleet.status("node-5")).toMatchObject({ power: "down", boots: 1, poweredOff: false });
    await run(1_100); // it boots, as any boot, after rebootMs
    expect(fleet.status("node-5")).toMatchObject({ power: "up", boots: 2, poweredOff: false });
    expect(fleet.powerState("node-5")).toBe("on");
    await fleet.stop();
  });

  it("a machine powered off while it reboots stays off: its scheduled boot does not happen", async () => {
    const { fleet, run, cluster } = await startFiveNodeFleet();
    await fleet.crash("node-5", 2_000);
    await fleet.powerOff("node-5");
    await run(5_000);
    expect(fleet.status("node-5")).toMatchObject({ power: "down", boots: 1, poweredOff: true });
    expect(cluster.node("node-5")!.power).toBe("off");
    await fleet.powerOn("node-5");
    await run(1_100);
    expect(fleet.status("node-5")).toMatchObject({ power: "up", boots: 2 });
    expect(cluster.node("node-5")!.power).toBe("on");
    await fleet.stop();
  });

  it("powering off a running machine stops its containers and disarms its watchdog; powering on twice boots once", async () => {
    const { fleet, run, runningOn } = await startFiveNodeFleet();
    expect(runningOn("node-5")).toEqual(["queue-0"]);
    await fleet.powerOff("node-5");
    expect(runningOn("node-5")).toEqual([]);
    await run(3 * watchdogMs);
    expect(fleet.status("node-5")).toMatchObject({ power: "down", resets: 0, boots: 1 });
    await fleet.powerOn("node-5");
    await fleet.powerOn("node-5");
    await run(1_100);
    expect(fleet.status("node-5").boots).toBe(2);
    await fleet.stop();
  });
});
