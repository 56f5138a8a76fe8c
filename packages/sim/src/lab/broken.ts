import type { MembershipView, Policy } from "@fenceline/contracts";
import { createNodeMachine, type NodeMachine } from "@fenceline/statecharts";

/**
 * How a broken variant breaks the system: the lifecycle machine (`machine`), or the membership
 * views every agent takes from the control plane's acks (`membership`: the view it uses instead
 * of the one it was sent; `first` is the first one it took).
 */
type Broken = {
  description: string;
  machine?: (policy: Policy) => NodeMachine;
  membership?: (node: string, sent: MembershipView, first: MembershipView | undefined) => MembershipView;
};

/**
 * Deliberately broken variants, to prove the lab catches what it claims to. They are built here,
 * in the lab, with xstate's `provide` or a wrapped port: production code has no switch that
 * could select them.
 */
export const BROKEN_MACHINES = {
  /** A safe-time guard that always passes: fencing counts as confirmed the moment it starts. */
  "safe-time": {
    description: "fencing is confirmed the moment it starts (a safe-time guard that always passes)",
    machine: (policy: Policy): NodeMachine => createNodeMachine(policy).provide({ guards: { fenceConfirmed: () => true } }) as NodeMachine,
  },
  /**
   * Every agent counts only itself, as the old `"peers": []` did: each view it is sent becomes
   * one with itself alone (its heartbeats still report the version it was sent).
   */
  "lonely-agent": {
    description: 'every agent counts only itself when cut off (the old "peers": []): a lone cut-off node is a majority of one',
    membership: (node: string, sent: MembershipView) => ({ ...sent, members: sent.members.filter((m) => m.node === node) }),
  },
  /**
   * Every agent keeps the members of the first view it took and only the newer versions' numbers,
   * as agents with a hand-kept `fleetSize` that nobody raised when the fleet grew.
   */
  "stale-fleet": {
    description: "every agent keeps the fleet it first learned while reporting newer views (a fleet size nobody raised after growth)",
    membership: (_node: string, sent: MembershipView, first: MembershipView | undefined) =>
      first ? { ...sent, members: first.members, witness: first.witness } : sent,
  },
} satisfies Record<string, Broken>;

export type BrokenMachineName = keyof typeof BROKEN_MACHINES;
export const BROKEN_MACHINE_NAMES = Object.keys(BROKEN_MACHINES) as BrokenMachineName[];

export function isBrokenMachineName(name: string): name is BrokenMachineName {
  return Object.hasOwn(BROKEN_MACHINES, name);
}

/** The broken machine a variant runs, if it breaks the machine. */
export function brokenMachine(name: BrokenMachineName, policy: Policy): NodeMachine | undefined {
  const variant: Broken = BROKEN_MACHINES[name];
  return variant.machine?.(policy);
}

/** How a variant alters the views the agents take, if it does. */
export function brokenMembership(name: BrokenMachineName): Broken["membership"] {
  const variant: Broken = BROKEN_MACHINES[name];
  return variant.membership;
}
