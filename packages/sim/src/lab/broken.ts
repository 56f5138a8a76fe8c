import type { Policy } from "@fenceline/contracts";
import { createNodeMachine, type NodeMachine } from "@fenceline/statecharts";

/**
 * Deliberately broken machines, to prove the lab catches what it claims to. They are built here,
 * in the lab, with xstate's `provide`: production code has no switch that could select them.
 */
export const BROKEN_MACHINES = {
  /** A safe-time guard that always passes: fencing counts as confirmed the moment it starts. */
  "safe-time": {
    description: "fencing is confirmed the moment it starts (a safe-time guard that always passes)",
    build: (policy: Policy): NodeMachine => createNodeMachine(policy).provide({ guards: { fenceConfirmed: () => true } }) as NodeMachine,
  },
} as const;

export type BrokenMachineName = keyof typeof BROKEN_MACHINES;
export const BROKEN_MACHINE_NAMES = Object.keys(BROKEN_MACHINES) as BrokenMachineName[];

export function isBrokenMachineName(name: string): name is BrokenMachineName {
  return Object.hasOwn(BROKEN_MACHINES, name);
}
