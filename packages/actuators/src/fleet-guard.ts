import { formatMs, resolveLimit, type FleetBudget, type Policy } from "@fenceline/contracts";

/** The remediation slots held by nodes, shared by every engine instance (FL_FLEET, key "budget"; schema: contracts' FleetBudget). */
export type { FleetBudget };
export const EMPTY_BUDGET: FleetBudget = { v: 1, slots: {} };

/** One membership view as the guard sees it now: its votes, its healthy members, its majority. */
export type ViewMajority = {
  version: number;
  members: number;
  /** The control plane's witness vote in this view (1: witness on and an even number of members). */
  witness: 0 | 1;
  votes: number;
  /** Members recorded healthy whose heartbeats arrive now. */
  healthy: number;
  /** healthy + witness is a strict majority of the votes. */
  majority: boolean;
  /** Since when that has held without interruption (null while it does not). */
  majoritySince: number | null;
};

/**
 * How the fleet looks now: how many nodes it has (the members of the current membership view,
 * or every node the engine records while there is no view), how many are healthy, since when a
 * healthy majority has been seen without interruption (null while there is none), and the same
 * for each membership view an agent may still hold (oldest first).
 */
export type FleetView = {
  fleetSize: number;
  healthy: number;
  majoritySince: number | null;
  /** The current view's witness vote (absent: 0). */
  witness?: 0 | 1;
  /** Every membership view kept, oldest first; absent while none was written. */
  views?: ViewMajority[];
};

export type SlotDecision = {
  granted: boolean;
  reason: string;
  budget: FleetBudget;
  /**
   * Since when a healthy majority has held in every view the node may hold (only with a grant
   * that checked one): the machine keeps the safe time honest with it.
   */
  majoritySince?: number;
};

export type SlotRequest = {
  node: string;
  controlPlane: boolean;
  at: number;
  /**
   * The membership version in the node's last heartbeat: it holds that view or a newer one. Absent
   * or 0 (no agent, no view): only the current view is checked.
   */
  membershipVersion?: number;
};

type MajorityCheck = { ok: true; since: number | null } | { ok: false; reason: string };

/**
 * The healthy majority a remediation needs while watchdogs fence: in every membership view the
 * node may hold (from the one in its last heartbeat to the newest), the members recorded healthy
 * and heard now, plus the control plane's witness vote, are a strict majority of the view's votes.
 * A cut-off agent keeps running only with a majority of its own view's votes, so both cannot hold
 * at once (docs/agent.md, "Why the engine and a cut-off agent can never both act").
 */
function majorityFor(view: FleetView, membershipVersion: number | undefined): MajorityCheck {
  const partitionHint = "(the engine may be on the minority side of a partition)";
  if (!view.views || view.views.length === 0) {
    const { fleetSize, healthy } = view;
    if (healthy * 2 <= fleetSize)
      return { ok: false, reason: `no healthy majority: ${healthy} of ${fleetSize} nodes healthy ${partitionHint}` };
    return { ok: true, since: view.majoritySince };
  }
  const current = view.views.at(-1)!;
  const from = membershipVersion !== undefined && membershipVersion > 0 ? membershipVersion : current.version;
  if (from > current.version) {
    return {
      ok: false,
      reason: `the node reported membership view v${from}, newer than the v${current.version} this guard has seen: asking again`,
    };
  }
  const range = view.views.filter((v) => v.version >= from);
  if (range.length === 0 || range[0]!.version !== from) {
    return {
      ok: false,
      reason: `the node's membership view v${from} is older than the oldest the guard keeps (v${view.views[0]!.version}): its majority cannot be checked`,
    };
  }
  let since: number | null = null;
  for (const v of range) {
    if (!v.majority) {
      const witness = v.witness ? " + the control plane's witness vote" : "";
      const which =
        range.length > 1 ? ` in membership view v${v.version} (the node may still hold any of v${from}–v${current.version})` : "";
      return {
        ok: false,
        reason: `no healthy majority${which}: ${v.healthy} of ${v.members} nodes healthy${witness}, ${v.healthy + v.witness} of ${v.votes} votes ${partitionHint}`,
      };
    }
    if (v.majoritySince !== null) since = since === null ? v.majoritySince : Math.max(since, v.majoritySince);
  }
  return { ok: true, since };
}

/**
 * Grants a remediation slot, or refuses it with the reason. Pure. A node that already holds a
 * slot gets it again (idempotent). Rules, in order: a healthy majority must remain in every view
 * the node may hold (the other half of the agents' self-fencing rule; `majorityFor`), and have
 * held for `unhealthyDurationMs` (a node silent since before it returned may be reconnecting),
 * `minHealthy` (the witness vote counts as one healthy node, of one more), `maxUnhealthy`, and at
 * most `maxControlPlane` control-plane nodes at a time.
 */
export function decideSlot(budget: FleetBudget, view: FleetView, request: SlotRequest, policy: Policy): SlotDecision {
  const held = Object.keys(budget.slots).length;
  const majority: MajorityCheck = policy.fencing.watchdog
    ? majorityFor(view, request.membershipVersion)
    : { ok: true, since: view.majoritySince };
  const majoritySince = majority.ok ? majority.since : null;
  if (budget.slots[request.node]) {
    // Asked again when the safe time passed: the answer says whether the majority holds now.
    return {
      granted: true,
      reason: majority.ok ? "already holds a slot" : `already holds a slot; ${majority.reason}`,
      budget,
      ...(majoritySince !== null ? { majoritySince } : {}),
    };
  }
  const { fleetSize, healthy } = view;
  const witness = view.witness ?? 0;
  const refuse = (reason: string): SlotDecision => ({ granted: false, reason, budget });
  if (!majority.ok) return refuse(majority.reason);
  // After the fleet was out of the control plane's sight (an outage of NATS or of the control
  // plane), its nodes come back over seconds: NATS clients reconnect with backoff and jitter. A
  // node still silent then may be one of those, so its silence counts from the majority's return.
  if (majoritySince !== null && request.at < majoritySince + policy.unhealthyDurationMs) {
    return refuse(
      `a healthy majority only for ${formatMs(Math.max(0, request.at - majoritySince))}: a node silent since before may still be reconnecting (unhealthyDurationMs ${formatMs(policy.unhealthyDurationMs)} counts from the majority's return)`,
    );
  }
  const minHealthy = resolveLimit(policy.fleet.minHealthy, fleetSize + witness, "up");
  if (healthy + witness < minHealthy) {
    const counted = witness ? ` (+ the control plane's witness vote, of ${fleetSize + witness})` : "";
    return refuse(`${healthy} of ${fleetSize} nodes healthy${counted}, minHealthy ${policy.fleet.minHealthy} requires ${minHealthy}`);
  }
  if (policy.fleet.maxUnhealthy !== undefined) {
    const max = resolveLimit(policy.fleet.maxUnhealthy, fleetSize, "down");
    if (held + 1 > max) {
      return refuse(
        `${held} nodes already in remediation (${Object.keys(budget.slots).sort().join(", ")}), maxUnhealthy ${policy.fleet.maxUnhealthy} allows ${max}`,
      );
    }
  }
  if (request.controlPlane) {
    const cp = Object.entries(budget.slots)
      .filter(([, s]) => s.controlPlane)
      .map(([n]) => n);
    if (cp.length >= policy.fleet.maxControlPlane) {
      return refuse(`control-plane node ${cp.join(", ")} already in remediation; at most ${policy.fleet.maxControlPlane} at a time`);
    }
  }
  return {
    granted: true,
    reason: `granted: ${healthy} of ${fleetSize} healthy${witness ? " + the witness" : ""}, ${held + 1} in remediation`,
    budget: { v: 1, slots: { ...budget.slots, [request.node]: { since: request.at, controlPlane: request.controlPlane } } },
    ...(majoritySince !== null ? { majoritySince } : {}),
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
