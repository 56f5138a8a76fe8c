import { createEvent, type NodeEvent } from "@fenceline/contracts";
import type { ClusterNode } from "@fenceline/kubernetes";

/** A node condition that, held for `durationMs`, makes the node unhealthy (Node Health Check's unhealthyConditions). */
export type ConditionRule = { type: string; status: string; durationMs: number };

/** Ready=False or Ready=Unknown for `durationMs` (NHC's default rules, with a configurable time). */
export function defaultConditionRules(durationMs: number): ConditionRule[] {
  return [
    { type: "Ready", status: "False", durationMs },
    { type: "Ready", status: "Unknown", durationMs },
  ];
}

export const DEFAULT_EXCLUDE_LABEL = "fenceline.io/exclude-from-remediation";

export type ConditionDetectorOptions = {
  rules: ConditionRule[];
  /**
   * Which nodes are watched: a label selector (`k=v`, `k!=v`, `k`, `!k`, `k in (a,b)`,
   * `k notin (a,b)`, comma-separated). The watch asks the API server for it too; this is the
   * same check on our side, so a node whose labels change is let go.
   */
  selector?: string;
  /** A node with this label set to "true" is excluded from remediation (default fenceline.io/exclude-from-remediation). */
  excludeLabel?: string;
  source?: string;
};

type ConditionState = {
  /** Start of the current run of unhealthy statuses of this condition type (null: healthy now). */
  since: number | null;
  /** The status it has now, for the detail and for which rule's duration applies. */
  status: string | null;
  detail: string;
  /** The `since` of the signal.unhealthy we emitted and not yet cleared. */
  reported: number | null;
};

type NodeState = {
  excluded: boolean;
  conditions: Map<string, ConditionState>;
  /** Of the last version seen: a deletion's event id derives from it, the same for every detector. */
  resourceVersion: string;
};

const signalName = (type: string) => `condition:${type}`;

/**
 * Turns Node objects into node events. Pure: no I/O and no clock; time is the `now` passed in.
 *
 * - A condition matching a rule for the rule's duration → `signal.unhealthy` with `since` =
 *   when the condition started (its lastTransitionTime), so the engine counts from there too.
 * - A flip between two unhealthy statuses of the same condition (Ready Unknown ↔ False, as a
 *   rebooting node does) keeps the original `since`: the duration is not restarted (Node Health
 *   Check bug fixed in PR #274) and no new signal is sent.
 * - The condition healthy again (or the node deleted, or no longer selected) → `signal.healthy`.
 * - The node deleted (not merely unselected) → `node.forgotten`: it leaves the fleet.
 *   The first time a node is seen healthy, a `signal.healthy` registers it (and clears a signal
 *   left from before a restart).
 * - The exclusion label set to "true" → `operator.pause` with the reason; removed → `operator.resume`.
 *
 * Event ids derive from the node, the condition and its timestamps, so two detectors (or a
 * restarted one) publish the same ids and JetStream stores each event once.
 */
export function createConditionDetector(options: ConditionDetectorOptions) {
  const source = options.source ?? "condition-detector";
  const excludeLabel = options.excludeLabel ?? DEFAULT_EXCLUDE_LABEL;
  const selected = labelMatcher(options.selector);
  const types = [...new Set(options.rules.map((r) => r.type))];
  const nodes = new Map<string, NodeState>();

  const ruleFor = (type: string, status: string | null) =>
    status === null ? undefined : options.rules.find((r) => r.type === type && r.status === status);

  const unhealthy = (node: string, type: string, c: ConditionState, now: number): NodeEvent =>
    createEvent("signal.unhealthy", {
      id: `cond:${node}:${type}:unhealthy:${c.since}`,
      node,
      at: now,
      source,
      data: { signal: signalName(type), since: c.since!, detail: c.detail.slice(0, 512) },
    });

  const healthy = (node: string, type: string, key: string | number, now: number): NodeEvent =>
    createEvent("signal.healthy", { id: `cond:${node}:${type}:healthy:${key}`, node, at: now, source, data: { signal: signalName(type) } });

  /** Emits what is due for one condition of a node. */
  function evaluate(node: string, type: string, c: ConditionState, now: number): NodeEvent[] {
    const rule = ruleFor(type, c.status);
    if (rule === undefined || c.since === null || c.reported !== null) return [];
    if (now < c.since + rule.durationMs) return [];
    c.reported = c.since;
    return [unhealthy(node, type, c, now)];
  }

  function forget(name: string, why: "deleted" | "unselected", now: number): NodeEvent[] {
    const state = nodes.get(name);
    if (!state) return [];
    nodes.delete(name);
    const out: NodeEvent[] = [];
    for (const [type, c] of state.conditions) if (c.reported !== null) out.push(healthy(name, type, `${why}:${now}`, now));
    // Deleted from Kubernetes: gone from the fleet too (its agent, if it still runs, joins again).
    if (why === "deleted") {
      out.push(
        createEvent("node.forgotten", {
          id: `k8s-deleted:${name}:${state.resourceVersion}`,
          node: name,
          at: now,
          source,
          data: { reason: "its Node object was deleted from Kubernetes" },
        }),
      );
    }
    return out;
  }

  return {
    /** A Node object as listed or watched (ADDED or MODIFIED). */
    observe(node: ClusterNode, now: number): NodeEvent[] {
      if (!selected(node.labels)) return forget(node.name, "unselected", now);
      const out: NodeEvent[] = [];
      let state = nodes.get(node.name);
      const first = state === undefined;
      if (state === undefined) {
        state = { excluded: false, conditions: new Map(), resourceVersion: node.resourceVersion };
        nodes.set(node.name, state);
      }
      state.resourceVersion = node.resourceVersion;

      const excluded = node.labels[excludeLabel] === "true";
      if (excluded !== state.excluded) {
        state.excluded = excluded;
        // Seen excluded at start: pause (idempotent for a paused node). Seen included at start: nothing.
        if (excluded) {
          out.push(
            createEvent("operator.pause", {
              id: `exclude:${node.name}:pause:${node.resourceVersion}`,
              node: node.name,
              at: now,
              source,
              data: { reason: `excluded from remediation by label ${excludeLabel}=true` },
            }),
          );
        } else if (!first) {
          out.push(
            createEvent("operator.resume", {
              id: `exclude:${node.name}:resume:${node.resourceVersion}`,
              node: node.name,
              at: now,
              source,
              data: { reason: `label ${excludeLabel}=true removed` },
            }),
          );
        }
      }

      for (const type of types) {
        const condition = node.conditions.find((c) => c.type === type);
        let c = state.conditions.get(type);
        if (c === undefined) {
          c = { since: null, status: null, detail: "", reported: null };
          state.conditions.set(type, c);
        }
        const status = condition?.status ?? null;
        if (ruleFor(type, status) !== undefined) {
          // Unhealthy: start the run at the condition's transition, unless a run is already going
          // (an Unknown ↔ False flip keeps it).
          if (c.since === null) c.since = Math.min(now, condition?.lastTransitionTime ?? now);
          c.status = status;
          c.detail = `${type}=${status} since ${new Date(c.since).toISOString()}${condition?.reason ? `: ${condition.reason}` : ""}${condition?.message ? ` (${condition.message})` : ""}`;
          out.push(...evaluate(node.name, type, c, now));
        } else {
          const wasReported = c.reported !== null;
          c.since = null;
          c.status = status;
          c.reported = null;
          if (wasReported || first) out.push(healthy(node.name, type, condition?.lastTransitionTime ?? `seen:${now}`, now));
        }
      }
      return out;
    },

    /** The Node object was deleted: its condition signals are cleared. */
    remove(name: string, now: number): NodeEvent[] {
      return forget(name, "deleted", now);
    },

    /** After a (re)list: every node not in `names` was deleted meanwhile. */
    synced(names: readonly string[], now: number): NodeEvent[] {
      const present = new Set(names);
      return [...nodes.keys()].filter((n) => !present.has(n)).flatMap((n) => forget(n, "deleted", now));
    },

    /** Emits the unhealthy signals whose duration has passed by `now`. */
    tick(now: number): NodeEvent[] {
      const out: NodeEvent[] = [];
      for (const [name, state] of nodes) for (const [type, c] of state.conditions) out.push(...evaluate(name, type, c, now));
      return out;
    },

    /** When the next unhealthy signal falls due (null: none pending). */
    nextDue(): number | null {
      let next: number | null = null;
      for (const state of nodes.values()) {
        for (const [type, c] of state.conditions) {
          const rule = ruleFor(type, c.status);
          if (rule === undefined || c.since === null || c.reported !== null) continue;
          const due = c.since + rule.durationMs;
          if (next === null || due < next) next = due;
        }
      }
      return next;
    },

    /** What the detector believes about a node (for tests and logs). */
    state(name: string) {
      const state = nodes.get(name);
      if (!state) return undefined;
      return {
        excluded: state.excluded,
        conditions: Object.fromEntries(
          [...state.conditions].map(([type, c]) => [type, { since: c.since, status: c.status, reported: c.reported }]),
        ),
      };
    },
  };
}
export type ConditionDetector = ReturnType<typeof createConditionDetector>;

/** Label selector (equality, set and existence requirements), as the API server evaluates it. */
export function labelMatcher(selector: string | undefined): (labels: Record<string, string>) => boolean {
  if (!selector || selector.trim() === "") return () => true;
  const parts: string[] = [];
  let depth = 0;
  let current = "";
  for (const ch of selector) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      parts.push(current.trim());
      current = "";
    } else current += ch;
  }
  parts.push(current.trim());
  const tests = parts
    .filter((p) => p.length > 0)
    .map((part): ((l: Record<string, string>) => boolean) => {
      let m = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(part);
      if (m) {
        const key = m[1]!;
        const values = m[3]!.split(",").map((v) => v.trim());
        return m[2] === "in" ? (l) => key in l && values.includes(l[key]!) : (l) => !(key in l) || !values.includes(l[key]!);
      }
      m = /^([^!=\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part);
      if (m) {
        const [, key, op, value] = m as unknown as [string, string, string, string];
        return op === "!=" ? (l) => !(key in l) || l[key] !== value : (l) => key in l && l[key] === value;
      }
      m = /^!\s*(\S+)$/.exec(part);
      if (m) {
        const key = m[1]!;
        return (l) => !(key in l);
      }
      if (/^\S+$/.test(part)) return (l) => part in l;
      throw new Error(`unable to parse requirement "${part}" in label selector "${selector}"`);
    });
  return (labels) => tests.every((t) => t(labels));
}
