import { createMembershipView, type HeartbeatAck } from "@fenceline/contracts";
import { describe, expect, it } from "vitest";
import { createAgent, type Agent } from "../src/agent.js";
import { createMemoryPeerNetwork } from "../src/memory-peers.js";
import { createMemoryAgentTransport } from "../src/memory-transport.js";
import { VirtualClock, VirtualWatchdog } from "@fenceline/testing";
import { HEARTBEAT_MS, TIMING } from "./helpers/agent-harness.js";
import { silentLog } from "./helpers/silent-log.js";

const NODES = ["a", "b", "c", "d", "e"];
/** What the control plane serves in its acks: the agents learn the fleet from it. */
const VIEW = createMembershipView(
  1,
  true,
  NODES.map((node) => ({ node })),
);

/** Five real agents in memory: `sideOf` splits the peer network, `controlPlane` says who reaches NATS. */
async function startFleet() {
  const clock = new VirtualClock(1_000_000);
  const controlPlane = new Set(NODES);
  let sideOf = (_node: string) => 0;
  const network = createMemoryPeerNetwork({ clock, canReach: (from, to) => sideOf(from) === sideOf(to) });
  const agents = new Map<string, { agent: Agent; watchdog: VirtualWatchdog }>();
  for (const node of NODES) {
    const transport = createMemoryAgentTransport({
      controlPlaneReachable: () => controlPlane.has(node),
      respond: (hb): HeartbeatAck => ({ v: 1, node: hb.node, at: clock.now(), membership: { version: VIEW.version, view: VIEW } }),
    });
    const watchdog = new VirtualWatchdog({ clock, timeoutMs: TIMING.watchdogTimeoutMs });
    const agent = createAgent({
      node,
      bootId: `boot-${node}`,
      incarnation: 1,
      timing: TIMING,
      heartbeatIntervalMs: HEARTBEAT_MS,
      transport,
      peers: network.transportFor(node),
      watchdog,
      watchdogKind: "hardware",
      clock,
      log: silentLog,
    });
    agents.set(node, { agent, watchdog });
    await agent.start();
    await clock.advanceSettling(170); // staggered heartbeats, as in a real fleet
  }
  await clock.advanceSettling(10_000);
  const fenced = () => NODES.filter((node) => agents.get(node)!.agent.state().selfFenced);
  return {
    clock,
    controlPlane,
    fenced,
    partition: (minority: string[]) => (sideOf = (node) => (minority.includes(node) ? 1 : 0)),
    reason: (node: string) => agents.get(node)!.agent.state().selfFenced?.reason,
  };
}

describe("a fleet of five agents", () => {
  it("a partitioned minority that can still talk to itself fences itself (SNR PR #354)", async () => {
    const fleet = await startFleet();
    fleet.partition(["a", "b"]);
    fleet.controlPlane.delete("a");
    fleet.controlPlane.delete("b");
    await fleet.clock.advanceSettling(TIMING.controlPlaneTimeoutMs + TIMING.peerRoundMs + HEARTBEAT_MS);
    expect(fleet.fenced()).toEqual(["a", "b"]);
    expect(fleet.reason("a")).toMatch(/^partitioned-minority/);
  });

  it("a control-plane outage seen by everybody fences nobody", async () => {
    const fleet = await startFleet();
    fleet.controlPlane.clear();
    await fleet.clock.advanceSettling(120_000);
    expect(fleet.fenced()).toEqual([]);
  });

  it("an outage plus a partition: the minority fences, the majority rides it out", async () => {
    const fleet = await startFleet();
    fleet.controlPlane.clear();
    fleet.partition(["d", "e"]);
    await fleet.clock.advanceSettling(60_000);
    expect(fleet.fenced()).toEqual(["d", "e"]);
  });
});
