import { describe, expect, it } from "vitest";
import { startFiveNodeFleet } from "./fleet-fixture.js";

describe("SimFleet: a NATS path loss (nats-loss)", () => {
  it("cuts only the node's path to the control plane: its kubelet still reaches the API server, its agent its peers; overlapping losses are counted", async () => {
    const { fleet, cluster, run } = await startFiveNodeFleet({ bootGate: true, nodeStates: true });
    await fleet.natsLoss("node-5", 3_000);
    await fleet.natsLoss("node-5", 1_000);
    expect(fleet.reachesControlPlane("node-5")).toBe(false);
    expect(cluster.node("node-5")!.reachable).toBe(true);
    expect(fleet.canReach("node-5", "node-1")).toBe(true);
    await run(1_500); // the shorter loss has ended, the longer one holds
    expect(fleet.reachesControlPlane("node-5")).toBe(false);
    await run(2_000);
    expect(fleet.status("node-5").power).toBe("up");
    expect(fleet.reachesControlPlane("node-5")).toBe(true);
    await fleet.stop();
  });
});

describe("SimFleet: the boot gate", () => {
  it("holds a rebooted node's pods while the engine says fencing or remediating, and starts them once it says rejoining", async () => {
    const { fleet, states, run, kubelet, runningOn } = await startFiveNodeFleet({ bootGate: true, nodeStates: true });
    expect(runningOn("node-5")).toEqual(["queue-0"]);
    states.set("node-5", "fencing");
    await fleet.crash("node-5", 1_000);
    await run(1_500); // booted again, reaching the control plane: the gate asks and stays closed
    expect(fleet.status("node-5")).toMatchObject({ boots: 2, power: "up", reachesControlPlane: true });
    expect(kubelet("node-5")).toBe(false);
    expect(runningOn("node-5")).toEqual([]);
    states.set("node-5", "remediating.running");
    await run(2_000);
    expect(kubelet("node-5")).toBe(false);
    expect(runningOn("node-5")).toEqual([]);
    states.set("node-5", "rejoining.reprovisioning");
    await run(1_000);
    expect(kubelet("node-5")).toBe(true);
    expect(runningOn("node-5")).toEqual(["queue-0"]);
    const gate = fleet.events.filter((e) => e.node === "node-5" && e.what.startsWith("boot gate")).map((e) => e.what);
    expect(gate[0]).toMatch(/^boot gate closed: the engine says fencing/);
    expect(gate).toContainEqual(expect.stringMatching(/^boot gate closed: the engine says remediating\.running/));
    expect(gate.at(-1)).toMatch(/^boot gate open: the engine says rejoining\.reprovisioning/);
    await fleet.stop();
  });

  it("opens at once when the engine says healthy", async () => {
    const { fleet, run, kubelet, runningOn } = await startFiveNodeFleet({ bootGate: true, nodeStates: true });
    await fleet.reboot("node-5");
    await run(1_200);
    expect(fleet.status("node-5").boots).toBe(2);
    expect(kubelet("node-5")).toBe(true);
    expect(runningOn("node-5")).toEqual(["queue-0"]);
    await fleet.stop();
  });

  it("stays closed while the node cannot reach the control plane, even if the engine would say healthy; opens once it can ask", async () => {
    const { fleet, run, kubelet, runningOn } = await startFiveNodeFleet({ bootGate: true, nodeStates: true });
    await fleet.natsLoss("node-5", 4_000);
    await fleet.crash("node-5", 1_000);
    await run(2_000); // booted, its kubelet would reach the API server, but the gate cannot ask
    expect(fleet.status("node-5")).toMatchObject({ boots: 2, power: "up", reachesControlPlane: false });
    expect(kubelet("node-5")).toBe(false);
    expect(runningOn("node-5")).toEqual([]);
    expect(fleet.events.some((e) => e.node === "node-5" && e.what.startsWith("boot gate closed: the control plane cannot be asked"))).toBe(
      true,
    );
    await run(3_000); // the NATS path is back (the isolated agent may have reset its machine meanwhile)
    await run(3_000);
    expect(fleet.status("node-5").reachesControlPlane).toBe(true);
    expect(kubelet("node-5")).toBe(true);
    expect(runningOn("node-5")).toEqual(["queue-0"]);
    await fleet.stop();
  });

  it("without the gate (a node installed without it) the kubelet starts with the boot and restarts the pods still bound to it, NATS or not", async () => {
    const { fleet, states, run, kubelet, runningOn } = await startFiveNodeFleet({ bootGate: false, nodeStates: true });
    states.set("node-5", "fencing");
    await fleet.natsLoss("node-5", 10_000);
    await fleet.crash("node-5", 1_000);
    await run(1_200);
    expect(fleet.status("node-5")).toMatchObject({ boots: 2, power: "up", reachesControlPlane: false });
    expect(kubelet("node-5")).toBe(true);
    expect(runningOn("node-5")).toEqual(["queue-0"]);
    await fleet.stop();
  });
});
