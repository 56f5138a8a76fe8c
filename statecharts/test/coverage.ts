import { createActor } from "xstate";
import type { NodeEvent, Policy } from "@fenceline/contracts";
import { exportMachine, type MachineState, type NodeMachine } from "@fenceline/statecharts";

/** "fencing timer.fired [timerIs(safe-time)]", "recovered (always)", "node operator.pause". */
function transitionKey(source: string, event: string, guard: string | null): string {
  return `${source} ${event}${guard ? ` [${guard}]` : ""}`;
}

/** Every (source, event, guard) of the machine, as `exportMachine` describes it. */
export function exportedKeys(policy: Policy): string[] {
  return exportMachine(policy).transitions.map((t) => transitionKey(t.source, t.event, t.guard));
}

// The same naming as export.ts, applied to the transitions xstate reports as taken.
function guardName(guard: unknown): string | null {
  if (guard === undefined || guard === null) return null;
  if (typeof guard === "string") return guard;
  if (typeof guard === "object" && "type" in guard) {
    const { type, params } = guard as { type: string; params?: Record<string, unknown> };
    return params && Object.keys(params).length > 0 ? `${type}(${Object.values(params).map(String).join(", ")})` : type;
  }
  return "inline";
}
const pathOf = (id: string) => id.replace(/^node\.?/, "") || "node";

type Taken = { source: { id: string }; eventType: string; guard?: unknown };

/**
 * The transitions xstate takes for `event` from `state`, found by replaying the step on an actor
 * with inspection (`@xstate.microstep` lists the transitions of each microstep).
 */
export function takenTransitions(machine: NodeMachine, state: MachineState, event: NodeEvent): string[] {
  const keys: string[] = [];
  const snapshot = machine.getPersistedSnapshot(machine.resolveState({ value: state.value, context: state.context }));
  let recording = false;
  const actor = createActor(machine, {
    snapshot: snapshot as never,
    input: { node: state.context.node },
    inspect: (inspection) => {
      if (!recording || inspection.type !== "@xstate.microstep") return;
      for (const t of (inspection as unknown as { _transitions: Taken[] })._transitions) {
        keys.push(transitionKey(pathOf(t.source.id), t.eventType === "" ? "(always)" : t.eventType, guardName(t.guard)));
      }
    },
  });
  actor.start();
  recording = true;
  actor.send(event);
  actor.stop();
  return keys;
}
