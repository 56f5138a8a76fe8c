import type { FaultKind } from "@fenceline/sim";

/** One fault of a scenario: when (after the fleet is healthy), what, and on which node. */
export type FaultPlan = {
  atMs: number;
  kind: FaultKind;
  /** "stateful": a node running a stateful replica nobody else was picked for; "any": a spare node. */
  pick: "stateful" | "any";
  /** How long the fault lasts (network loss, partition, outage) or the node stays down (crash). */
  forMs?: number;
  /** agent-crash: restart the agent after this long (omit: never restarted, its watchdog fires). */
  restartAfterMs?: number;
  /** partition-minority: how many nodes are cut off together, at most a minority (`minorityGroupSize`). */
  groupSize?: number;
  /** hang: whether the node's watchdog resets it (default "works"). */
  watchdog?: "works" | "broken";
};

export type Scenario = {
  name: string;
  description: string;
  faults: FaultPlan[];
  /**
   * Every machine gets a BMC (OpenIPMI's ipmi_sim on a loopback UDP port, reached by the real
   * fence_ipmilan) and the policy these fencing levels (unless --policy names others).
   */
  power?: { levels: string[][] };
};

export const SCENARIOS: Record<string, Scenario> = {
  default: {
    name: "default",
    description: "a hard crash, a network loss and a reboot, each on a node running a stateful replica",
    faults: [
      { atMs: 0, kind: "crash", pick: "stateful", forMs: 5_000 },
      { atMs: 200, kind: "network-loss", pick: "stateful", forMs: 4_000 },
      { atMs: 400, kind: "reboot", pick: "stateful" },
    ],
  },
  crash: {
    name: "crash",
    description: "a hard crash; the machine is back after 5 s",
    faults: [{ atMs: 0, kind: "crash", pick: "stateful", forMs: 5_000 }],
  },
  "network-loss": {
    name: "network-loss",
    description: "a node loses its network (its containers keep running): it must fence itself before its workloads move",
    faults: [{ atMs: 0, kind: "network-loss", pick: "stateful", forMs: 4_000 }],
  },
  reboot: { name: "reboot", description: "an administrator reboots a node", faults: [{ atMs: 0, kind: "reboot", pick: "stateful" }] },
  "agent-crash": {
    name: "agent-crash",
    description: "one agent crashes and restarts at once (nothing to do); another never comes back (its watchdog resets the node)",
    faults: [
      { atMs: 0, kind: "agent-crash", pick: "any", restartAfterMs: 300 },
      { atMs: 0, kind: "agent-crash", pick: "stateful" },
    ],
  },
  "partition-minority": {
    name: "partition-minority",
    description:
      "three nodes (fewer in a fleet under 7: always a minority) are cut off together, so they fence themselves and their workloads move",
    faults: [{ atMs: 0, kind: "partition-minority", pick: "stateful", forMs: 4_000, groupSize: 3 }],
  },
  "power-fence": {
    name: "power-fence",
    description:
      "a node hangs and its watchdog is broken, so it never resets itself: its BMC (ipmi_sim, through fence_ipmilan, the first fencing level) powers it off, its workloads move at once, and it is powered on again to rejoin",
    faults: [{ atMs: 0, kind: "hang", pick: "stateful", watchdog: "broken" }],
    power: { levels: [["ipmi"], ["watchdog"]] },
  },
  "control-plane-outage": {
    name: "control-plane-outage",
    description: "no agent reaches NATS for 6 s: a majority lost the control plane, so nobody reboots and nothing is remediated",
    faults: [{ atMs: 0, kind: "control-plane-outage", pick: "any", forMs: 6_000 }],
  },
};

/**
 * The size of a cut-off group that is still a minority of `nodes`: the requested size, or fewer
 * in a small fleet (3 of 5 would be a majority: it would keep the control plane's quorum and
 * nothing would be fenced). A group needs two nodes, so the fleet needs five; fewer throws.
 */
export function minorityGroupSize(requested: number, nodes: number): number {
  const largest = Math.floor((nodes - 1) / 2);
  if (largest < 2) {
    throw new Error(`scenario partition-minority needs at least 5 nodes (a group of 2 cut off from the other 3); got ${nodes}`);
  }
  return Math.min(requested, largest);
}

/** Checks that `scenario` can run on `nodes` nodes; throws with the reason if it cannot. */
export function checkScenario(scenario: Scenario, nodes: number): void {
  for (const f of scenario.faults) if (f.kind === "partition-minority") minorityGroupSize(f.groupSize ?? 2, nodes);
}
