import type { HeartbeatAck } from "@fenceline/contracts";
import { createMemoryAgentTransport } from "@fenceline/agent";
import { InMemoryCluster, LAB_POLICY, SimFleet, VirtualClock, silentLogger } from "../src/index.js";

const FLEET_NODES = ["node-1", "node-2", "node-3", "node-4", "node-5"];

/**
 * Five machines running the real agent and a cluster with one StatefulSet replica on node-5. With
 * `nodeStates`, a node state service answers `states` (the engine's state of each node, as
 * FL_NODES would hold it; all healthy at first) over each node's own NATS path; without it the
 * agents' peers give no verdicts.
 */
export async function startFiveNodeFleet(options: { bootGate?: boolean; nodeStates?: boolean } = {}) {
  const nodes = FLEET_NODES;
  const clock = new VirtualClock(1_000_000);
  const cluster = new InMemoryCluster({ clock, nodes });
  const states = new Map<string, string>(nodes.map((n) => [n, "healthy"]));
  const fleet: SimFleet = new SimFleet({
    nodes,
    clock,
    cluster,
    timing: LAB_POLICY.agent,
    heartbeatIntervalMs: LAB_POLICY.heartbeat.intervalMs,
    rebootMs: 1_000,
    ...(options.bootGate !== undefined ? { bootGate: options.bootGate } : {}),
    log: silentLogger,
    transportFor: (node) =>
      createMemoryAgentTransport({
        controlPlaneReachable: () => fleet.reachesControlPlane(node),
        respond: (hb): HeartbeatAck => ({ v: 1, node: hb.node, at: clock.now() }),
        ...(options.nodeStates ? { nodeState: (about: string) => states.get(about) } : {}),
      }),
  });
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
  const reachable = (node: string) => cluster.node(node)!.reachable;
  const kubelet = (node: string) => cluster.node(node)!.kubeletRunning;
  const runningOn = (node: string) =>
    cluster
      .containers()
      .filter((c) => c.node === node)
      .map((c) => c.pod);
  return { clock, cluster, fleet, states, run, reachable, kubelet, runningOn };
}
