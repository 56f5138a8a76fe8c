import {
  CommandResultData,
  contractMeeting,
  createEvent,
  type AuditRecord,
  type Command,
  type CommandKind,
  type NodeEvent,
  type NodeEventOf,
  type NodeEventType,
  type Policy,
} from "@fenceline/contracts";
import { createDecider, fold, timerEventId, type NodeSnapshot } from "@fenceline/engine";

/**
 * A fixed, pre-computed input sequence for the engine tests on NATS. Each node follows a script
 * of steps; a step reads the node's state as the fold left it (to fire a timer at the due time
 * the machine set, or to answer the command it issued last), so the inputs are exactly what the
 * timer service and the actuators would have published. Nodes are interleaved round-robin; the
 * sequence of an event is its position + 1 (on a fresh FL_EVENTS stream).
 */
type NodeView = { snapshot: NodeSnapshot | null; commands: Command[]; at: number; policy: Policy };
type Step = (node: string, view: NodeView) => NodeEvent;

const send =
  <T extends NodeEventType>(type: T, data: NodeEventOf<T>["data"], afterMs = 100): Step =>
  (node, view) =>
    createEvent(type, { id: `${node}:${type}:${view.at + afterMs}`, node, at: view.at + afterMs, source: "test", data }) as NodeEvent;

/** The pending timer `name`, at its due time, with the id the timer service would give it. */
const fire =
  (name: string): Step =>
  (node, view) => {
    const due = view.snapshot?.context.timers[name];
    if (due === undefined) throw new Error(`${node}: no pending timer ${name} (${JSON.stringify(view.snapshot?.context.timers)})`);
    return createEvent("timer.fired", {
      id: timerEventId(node, name, due),
      node,
      at: Math.max(due, view.at),
      source: "timer",
      data: { timer: name, due },
    }) as NodeEvent;
  };

/** The result of the last command of `kind` the node was sent, for its epoch. */
const result =
  (kind: CommandKind, ok: boolean, extra: { reason?: string; facts?: Record<string, string | number | boolean> } = {}): Step =>
  (node, view) => {
    const command = view.commands.findLast((c) => c.kind === kind);
    if (!command) throw new Error(`${node}: no ${kind} command to answer`);
    const at = view.at + 100;
    return createEvent("command.result", {
      id: `result:${command.id}:${ok ? "ok" : "failed"}`,
      node,
      at,
      source: `actuator:test`,
      data: CommandResultData.parse({ commandId: command.id, kind, epoch: command.epoch, ok, ...extra }),
    }) as NodeEvent;
  };

/** Heard through its agent, whose contract meets the policy (so its silence can be proof by time). */
const joined =
  (bootId = "b1", hostGroup = "db"): Step =>
  (node, view) =>
    send("node.joined", { bootId, incarnation: 1, hostGroup, contract: contractMeeting(view.policy) })(node, view);
/** Last heartbeat 1s after the previous event, missed 1s later. */
const missed: Step = (node, view) =>
  createEvent("heartbeat.missed", {
    id: `${node}:heartbeat.missed:${view.at + 2_000}`,
    node,
    at: view.at + 2_000,
    source: "heartbeat-detector",
    data: { lastSeenAt: view.at + 1_000, bootId: "b1" },
  }) as NodeEvent;

/** Every node goes healthy → suspect → fencing → remediating → rejoining → healthy, each its own way. */
export const SCRIPTS: Record<string, Step[]> = {
  // Safe time (and the fleet guard's healthy majority) confirms fencing; Kubernetes 1.30 → OutOfServiceTaint; back after a reboot → re-provision.
  "node-a": [
    joined(),
    missed,
    fire("suspect"),
    result("slot.acquire", true),
    fire("safe-time"),
    // The guard confirms a healthy majority held throughout the silence.
    result("slot.acquire", true, { facts: { majoritySince: 0 } }),
    result("cluster.version", true, { facts: { serverVersion: "1.30" } }),
    result("taint.add", true),
    result("workloads.await-gone", true),
    send("heartbeat.resumed", { bootId: "b2", incarnation: 2 }),
    result("reprovision", true),
    result("taint.remove", true),
  ],
  // A dotted name; the watchdog stop is acknowledged and its reset deadline passes; 1.27 →
  // ResourceDeletion; the first re-provisioning fails and is retried after the backoff.
  "node-b.rack1": [
    joined("b1", "web"),
    missed,
    fire("suspect"),
    result("slot.acquire", true),
    result("watchdog.stop", true),
    fire("watchdog-reset"),
    result("cluster.version", true, { facts: { serverVersion: "1.27" } }),
    result("pods.delete", true),
    // Still silent: the heartbeat detector says so again; nothing changes while it is remediated.
    missed,
    send("heartbeat.resumed", { bootId: "b2", incarnation: 2 }),
    result("reprovision", false, { reason: "ansible: unreachable" }),
    fire("reprovision-retry"),
    result("reprovision", true),
    result("taint.remove", true),
  ],
  // The fleet guard refuses once; the first majority check finds none (asked again later);
  // 1.30 → OutOfServiceTaint; the node comes back as a boot change.
  "node-c": [
    joined(),
    missed,
    fire("suspect"),
    result("slot.acquire", false, { reason: "2 of 3 nodes unhealthy" }),
    fire("guard-retry"),
    result("slot.acquire", true),
    fire("safe-time"),
    result("slot.acquire", false, { reason: "no healthy majority" }),
    fire("safe-time"),
    result("slot.acquire", true, { facts: { majoritySince: 0 } }),
    result("cluster.version", true, { facts: { serverVersion: "1.30" } }),
    result("workloads.await-gone", true),
    result("taint.add", true),
    send("boot.changed", { previousBootId: "b1", bootId: "b2" }),
    result("reprovision", true),
    result("taint.remove", true),
  ],
};

export type Scenario = {
  events: NodeEvent[];
  /** The audit records, commands and final snapshots an uninterrupted fold produces. */
  audit: AuditRecord[];
  commands: Command[];
  snapshots: Map<string, NodeSnapshot>;
};

/** Builds the input sequence by folding it in memory as it goes. */
export function buildScenario(policy: Policy, scripts: Record<string, Step[]> = SCRIPTS): Scenario {
  const decider = createDecider(policy);
  const nodes = Object.keys(scripts);
  const views = new Map<string, NodeView>(nodes.map((node, i) => [node, { snapshot: null, commands: [], at: 1_000_000 + i * 10, policy }]));
  const cursor = new Map(nodes.map((n) => [n, 0]));
  const scenario: Scenario = { events: [], audit: [], commands: [], snapshots: new Map() };
  for (let progressed = true; progressed; ) {
    progressed = false;
    for (const node of nodes) {
      const steps = scripts[node]!;
      const index = cursor.get(node)!;
      if (index >= steps.length) continue;
      progressed = true;
      cursor.set(node, index + 1);
      const view = views.get(node)!;
      const event = steps[index]!(node, view);
      const seq = scenario.events.length + 1;
      const out = fold(decider, view.snapshot, event, seq);
      scenario.events.push(event);
      scenario.audit.push(out.audit);
      scenario.commands.push(...out.commands);
      views.set(node, { snapshot: out.snapshot, commands: [...view.commands, ...out.commands], at: event.at, policy });
      scenario.snapshots.set(node, out.snapshot);
    }
  }
  return scenario;
}
