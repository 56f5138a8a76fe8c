import type { Policy } from "@fenceline/contracts";
import { createNodeMachine } from "./machine.js";

export type MachineTransition = {
  source: string;
  event: string;
  targets: string[];
  guard: string | null;
  actions: string[];
};

export type MachineStateNode = {
  id: string;
  path: string;
  parent: string | null;
  initial: string | null;
  /** True for a transient state left at once by an eventless transition. */
  transient: boolean;
  description: string | null;
};

/** A compact, stable description of the machine for the visualizer and `statechart --json`. */
export type MachineExport = {
  id: string;
  policyVersion: string;
  states: MachineStateNode[];
  transitions: MachineTransition[];
  /** xstate's own definition (`machine.toJSON()`), for tools that understand it. */
  definition: unknown;
};

type Def = {
  key: string;
  id: string;
  initial?: { target?: Array<{ id: string }> } | undefined;
  states?: Record<string, Def>;
  transitions?: Map<string, Array<{ eventType: string; target?: Array<{ id: string }> | undefined; guard?: unknown; actions?: unknown[] }>>;
  always?: Array<{ target?: Array<{ id: string }> | undefined; guard?: unknown; actions?: unknown[] }>;
  description?: string;
};

function nameOf(thing: unknown): string | null {
  if (thing === undefined || thing === null) return null;
  if (typeof thing === "string") return thing;
  if (typeof thing === "object" && "type" in thing) {
    const { type, params } = thing as { type: string; params?: Record<string, unknown> };
    const detail = params && Object.keys(params).length > 0 ? `(${Object.values(params).map(String).join(", ")})` : "";
    return `${type}${detail}`;
  }
  return "inline";
}

/**
 * A state left at once: an atomic state whose only transitions are eventless (`always`) and one
 * of them is unguarded. xstate 5 keeps them in `StateNode.always`, apart from `transitions`
 * (the evented ones), and gives an atomic node `states: {}` (never undefined).
 */
function isTransient(node: Def): boolean {
  const always = node.always ?? [];
  const atomic = Object.keys(node.states ?? {}).length === 0;
  return atomic && (node.transitions?.size ?? 0) === 0 && always.some((t) => t.guard === undefined);
}

const pathOf = (id: string) => id.replace(/^node\.?/, "") || "node";

export function exportMachine(policy: Policy): MachineExport {
  const machine = createNodeMachine(policy);
  const states: MachineStateNode[] = [];
  const transitions: MachineTransition[] = [];

  const walk = (node: Def, parent: string | null) => {
    const path = pathOf(node.id);
    if (parent !== null) {
      states.push({
        id: node.id,
        path,
        parent: parent === "node" ? null : parent,
        initial: node.initial?.target?.[0] ? pathOf(node.initial.target[0].id) : null,
        transient: isTransient(node),
        description: node.description ?? null,
      });
    }
    for (const t of [...(node.transitions?.values() ?? [])].flat()) {
      transitions.push({
        source: path,
        event: t.eventType,
        targets: (t.target ?? []).map((s) => pathOf(s.id)),
        guard: nameOf(t.guard),
        actions: (t.actions ?? []).map((a) => nameOf(a) ?? "inline"),
      });
    }
    for (const t of node.always ?? []) {
      transitions.push({
        source: path,
        event: "(always)",
        targets: (t.target ?? []).map((s) => pathOf(s.id)),
        guard: nameOf(t.guard),
        actions: (t.actions ?? []).map((a) => nameOf(a) ?? "inline"),
      });
    }
    for (const child of Object.values(node.states ?? {})) walk(child, path);
  };
  walk(machine.root as unknown as Def, null);
  return { id: machine.id, policyVersion: policy.version, states, transitions, definition: machine.toJSON() };
}
