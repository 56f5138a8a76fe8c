import { resolveLimit, type FleetBudget, type Policy } from "@fenceline/contracts";

/** The remediation slots held by nodes, shared by every engine instance (FL_FLEET, key "budget"; schema: contracts' FleetBudget). */
export type { FleetBudget };
export const EMPTY_BUDGET: FleetBudget = { v: 1, slots: {} };

/**
 * How the fleet looks now: how many nodes exist, how many are healthy, and since when a healthy
 * majority has been seen without interruption (null while there is none).
 */
export type FleetView = { fleetSize: number; healthy: number; majoritySince: number | null };

export type SlotDecision = { granted: boolean; reason: string; budget: FleetBudget };

/**
 * Grants a remediation slot, or refuses it with the reason. Pure. A node that already holds a
 * slot gets it again (idempotent). Rules, in order: a healthy majority must remain (the other
 * half of the agents' self-fencing rule), `minHealthy`, `maxUnhealthy`, and at most
 * `maxControlPlane` control-plane nodes at a time.
 */
export function decideSlot(
  budget: FleetBudget,
  view: FleetView,
  request: { node: string; controlPlane: boolean; at: number },
  policy: Policy,
): SlotDecision {
  const held = Object.keys(budget.slots).length;
  if (budget.slots[request.node]) return { granted: true, reason: "already holds a slot", budget };
  const { fleetSize, healthy } = view;
  const refuse = (reason: string): SlotDecision => ({ granted: false, reason, budget });

  if (policy.fencing.watchdog && healthy * 2 <= fleetSize) {
    return refuse(`no healthy majority: ${healthy} of ${fleetSize} nodes healthy (the engine may be on the minority side of a partition)`);
  }
  const minHealthy = resolveLimit(policy.fleet.minHealthy, fleetSize, "up");
  if (healthy < minHealthy) {
    return refuse(`${healthy} of ${fleetSize} nodes healthy, minHealthy ${policy.fleet.minHealthy} requires ${minHealthy}`);
  }
  if (policy.fleet.maxUnhealthy !== undefined) {
    const max = resolveLimit(policy.fleet.maxUnhealthy, fleetSize, "down");
    if (held + 1 > max) {
      return refuse(`${held} nodes already in remediation (${Object.keys(budget.slots).sort().join(", ")}), maxUnhealthy ${policy.fleet.maxUnhealthy} allows ${max}`);
    }
  }
  if (request.controlPlane) {
    const cp = Object.entries(budget.slots).filter(([, s]) => s.controlPlane).map(([n]) => n);
    if (cp.length >= policy.fleet.maxControlPlane) {
      return refuse(`control-plane node ${cp.join(", ")} already in remediation; at most ${policy.fleet.maxControlPlane} at a time`);
    }
  }
  return {
    granted: true,
    reason: `granted: ${healthy} of ${fleetSize} healthy, ${held + 1} in remediation`,
    budget: { v: 1, slots: { ...budget.slots, [request.node]: { since: request.at, controlPlane: request.controlPlane } } },
  };
}

/**
 * How many nodes may hold a remediation slot at once in a fleet of `fleetSize`: `maxUnhealthy`
 * (rounded down) and what `minHealthy` (rounded up) leaves, whichever is smaller. The live rules
 * of `decideSlot` (a healthy majority, control-plane nodes) can refuse earlier.
 */
export function remediationSlotsAllowed(policy: Policy, fleetSize: number): number {
  const byMinHealthy = Math.max(0, fleetSize - resolveLimit(policy.fleet.minHealthy, fleetSize, "up"));
  if (policy.fleet.maxUnhealthy === undefined) return byMinHealthy;
  return Math.min(byMinHealthy, resolveLimit(policy.fleet.maxUnhealthy, fleetSize, "down"));
}

export function releaseSlot(budget: FleetBudget, node: string): FleetBudget {
  if (!budget.slots[node]) return budget;
  const slots = { ...budget.slots };
  delete slots[node];
  return { v: 1, slots };
}
