import { describe, expect, it } from "vitest";
import type { HeartbeatAck } from "@fenceline/contracts";
import { createMemoryAgentTransport } from "@fenceline/agent";
import { InMemoryCluster, LAB_POLICY, SimFleet, VirtualClock, silentLogger } from "../src/index.js";

const nodes = ["node-1", "node-2", "node-3", "node-4", "node-5"];

/**
 * Five machines running the real agent, one StatefulSet replica on node-5, and a node state
 * service that answers `states` (the engine's state of each node, as FL_NODES would hold it)
 * over each node's own NATS path.
 */
async function startFleet(bootGate: boolean) {
  const clock = new VirtualClock(1_000_000);
  const cluster = new InMemoryCluster({ clock, nodes });
  const states = new Map<string, string>();
  const fleet: SimFleet = new SimFleet({
    nodes,
    clock,
    cluster,
    timing: LAB_POLICY.agent,
    heartbeatIntervalMs: LAB_POLICY.heartbeat.intervalMs,
    rebootMs: 1_000,
    bootGate,
    log: silentLogger,
    transportFor: (node) =>
      createMemoryAgentTransport({
        controlPlaneReachable: () => fleet.reachesControlPlane(node),
        respond: (hb): HeartbeatAck => ({ v: 1, node: hb.node, at: clock.now() }),
        nodeState: (about) => states.get(about),
      }),
  });
  for (const n of nodes) states.set(n, "healthy");
  await fleet.start();
  // Four Deployment pods fill node-1…node-4 first, so the replica lands on node-5.
  cluster.addDeployment("web", 4);
  cluster.step();
  cluster.addStatefulSet("queue", 1);
  cluster.step();
  /** Advances the clock in 100 ms ticks, settling the fleet's callbacks and stepping the kubelets. */
  const run = async (ms: number) => {
    for (let t = 0; t < ms; t += 100) {
      clock.advance(100);
      for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
      cluster.step();
    }
  };
  const kubelet = (node: string) => cluster.node(node)!.kubeletRunning;
  const runningOn = (node: string) => cluster.containers().filter((c) => c.node === node).map((c) => c.pod);
  return { clock, cluster, fleet, states, run, kubelet, runningOn };
}

describe("SimFleet: a NATS path loss (nats-loss)", () => {
  it("cuts only the node's path to the control plane: its kubelet still reaches the API server, its agent its peers; overlapping losses are counted", async () => {
    const { fleet, cluster, run } = await startFleet(true);
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
    const { fleet, states, run, kubelet, runningOn } = await startFleet(true);
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
    const { fleet, run, kubelet, runningOn } = await startFleet(true);
    await fleet.reboot("node-5");
    await run(1_200);
    expect(fleet.status("node-5").boots).toBe(2);
    expect(kubelet("node-5")).toBe(true);
    expect(runningOn("node-5")).toEqual(["queue-0"]);
    await fleet.stop();
  });

  it("stays closed while the node cannot reach the control plane, even if the engine would say healthy; opens once it can ask", async () => {
    const { fleet, run, kubelet, runningOn } = await startFleet(true);
    await fleet.natsLoss("node-5", 4_000);
    await fleet.crash("node-5", 1_000);
    await run(2_000); // booted, its kubelet would reach the API server, but the gate cannot ask
    expect(fleet.status("node-5")).toMatchObject({ boots: 2, power: "up", reachesControlPlane: false });
    expect(kubelet("node-5")).toBe(false);
    expect(runningOn("node-5")).toEqual([]);
    expect(fleet.events.some((e) => e.node === "node-5" && e.what.startsWith("boot gate closed: the control plane cannot be asked"))).toBe(true);
    await run(3_000); // the NATS path is back (the isolated agent may have reset its machine meanwhile)
    await run(3_000);
    expect(fleet.status("node-5").reachesControlPlane).toBe(true);
    expect(kubelet("node-5")).toBe(true);
    expect(runningOn("node-5")).toEqual(["queue-0"]);
    await fleet.stop();
  });

  it("without the gate (a node installed without it) the kubelet starts with the boot and restarts the pods still bound to it, NATS or not", async () => {
    const { fleet, states, run, kubelet, runningOn } = await startFleet(false);
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
