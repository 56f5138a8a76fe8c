import { describe, expect, it } from "vitest";
import { startFiveNodeFleet } from "./fleet-fixture.js";

describe("SimFleet: overlapping network faults (seed 3490)", () => {
  it("the end of a network loss during a partition leaves the node cut off from the API server and the control plane", async () => {
    const { fleet, run, reachable } = await startFiveNodeFleet();
    await fleet.partition(["node-5"], 10_000);
    await fleet.networkLoss("node-5", 1_000);
    await run(1_500);
    expect(reachable("node-5")).toBe(false);
    expect(fleet.reachesControlPlane("node-5")).toBe(false);
    expect(fleet.canReach("node-5", "node-1")).toBe(false);
    await run(9_000);
    expect(reachable("node-5")).toBe(true);
    expect(fleet.reachesControlPlane("node-5")).toBe(true);
    await fleet.stop();
  });

  it("the end of a partition during a network loss leaves the node isolated until the loss ends", async () => {
    const { fleet, run, reachable } = await startFiveNodeFleet();
    await fleet.networkLoss("node-5", 5_000);
    await fleet.partition(["node-5"], 1_000);
    await run(1_500);
    expect(reachable("node-5")).toBe(false);
    expect(fleet.canReach("node-5", "node-1")).toBe(false);
    await run(4_000);
    expect(reachable("node-5")).toBe(true);
    expect(fleet.canReach("node-5", "node-1")).toBe(true);
    await fleet.stop();
  });

  it("overlapping network losses: the node is reachable again only when the last one ends", async () => {
    const { fleet, run, reachable } = await startFiveNodeFleet();
    await fleet.networkLoss("node-5", 3_000);
    await run(500);
    await fleet.networkLoss("node-5", 500);
    await run(1_000);
    expect(reachable("node-5")).toBe(false);
    await run(2_000);
    expect(reachable("node-5")).toBe(true);
    await fleet.stop();
  });

  it("a machine that reboots while partitioned off does not restart its pods, even after a flap ends; it does once the partition heals", async () => {
    const { fleet, run, runningOn } = await startFiveNodeFleet();
    expect(runningOn("node-5")).toEqual(["queue-0"]);
    await fleet.partition(["node-5"], 20_000);
    await fleet.networkLoss("node-5", 800);
    await run(1_000); // the flap has ended, the partition holds
    await fleet.crash("node-5", 2_000);
    expect(runningOn("node-5")).toEqual([]);
    await run(2_500); // booted again, still cut off: its kubelet cannot get its pods from the API server
    expect(fleet.status("node-5")).toMatchObject({ boots: 2, power: "up" });
    expect(runningOn("node-5")).toEqual([]);
    await run(17_500); // the partition has healed (the isolated agent may have reset its machine meanwhile)
    expect(runningOn("node-5")).toEqual(["queue-0"]);
    await fleet.stop();
  });
});
