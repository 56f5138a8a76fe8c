import { createHash } from "node:crypto";
import { votesOf, type AuditRecord, type Policy } from "@fenceline/contracts";
import { parseAgentConfig, renderAgentConfig, type AgentConfig } from "@fenceline/agent";
import { simBmcDevices } from "../bmc/sim-bmc.js";
import { VirtualClock } from "@fenceline/testing";
import { brokenMachine, brokenMembership, type BrokenMachineName } from "./broken.js";
import { BMC_FAULT_KINDS, FAULT_KINDS, injectFault, planFaults, type FaultRecord, type LabFaultKind } from "./faults.js";
import { outageFenceGroup, type LabFailure } from "./invariants.js";
import {
  convergenceBound,
  LAB_ACK_WAIT_MS,
  LAB_AGENT_CONFIG,
  LAB_POLICY,
  labNodeIp,
  withPowerLevels,
  type ConvergenceBound,
} from "./policy.js";
import { Prng } from "./prng.js";
import { LabWorld, type TrailLine } from "./world.js";

/** Where every seed's virtual clock starts (2026-01-01T00:00:00Z), so times read like dates. */
export const LAB_EPOCH = 1_767_225_600_000;
/** The fleet is given this long to come up before the first fault. */
export const WARMUP_MS = 5_000;
/** Faults start within this window after the warm-up. */
export const FAULT_WINDOW_MS = 30_000;

export type SeedOptions = {
  /** Fault kinds to draw from (default: the whole catalogue). */
  kinds?: readonly LabFaultKind[];
  /** How many faults (default: 1 to 4, drawn from the seed). */
  faults?: number;
  /** Fleet size (default: 4 to 10, drawn from the seed). */
  nodes?: number;
  /** Run a deliberately broken variant (the lab's self-test): a broken machine or broken agents. */
  broken?: BrokenMachineName;
  policy?: Policy;
  /** Keep the audit records and the trail in the result (for a replay). */
  keep?: boolean;
  /** The boot gate on every machine (default: on; off: a fleet installed without it). */
  bootGate?: boolean;
  /** Replaces the computed convergence bound (tests of the convergence check). */
  convergenceBoundMs?: number;
  /**
   * The agent configuration file every machine runs (its text; `__NODE_NAME__` and `__NODE_IP__`
   * filled in per machine). Default: LAB_AGENT_CONFIG.
   */
  agentConfig?: string;
  /**
   * Fleets that grow: in half the seeds 1–2 machines join during the warm-up (default: on). Off
   * replays the seeds recorded before it existed (with `kinds: FAULT_KINDS_BEFORE_MEMBERSHIP`).
   */
  growth?: boolean;
  /**
   * Fence by power: most machines get a simulated BMC and the policy the levels [ipmi], then
   * [watchdog]. Default: drawn from the seed (half the seeds) when the fault kinds include the
   * BMC faults, always when they are all BMC faults, never otherwise (so a seed recorded with an
   * older catalogue replays the run it names).
   */
  power?: boolean;
};

export type SeedResult = {
  seed: number;
  ok: boolean;
  failures: LabFailure[];
  faultsInjected: number;
  faults: FaultRecord[];
  nodes: string[];
  /** Virtual time simulated, from the start to the end of the run. */
  virtualMs: number;
  /** When the last fault healed (relative to the start). */
  lastHealAtMs: number;
  /** When every node had converged (relative to the start), or null. */
  convergedAtMs: number | null;
  bound: ConvergenceBound;
  events: number;
  /** Nodes that ended in the operator state, with the reason. */
  operator: Array<{ node: string; reason: string }>;
  /** sha256 of the audit stream (JSON lines): equal for equal seeds. */
  digest: string;
  /** The seed fenced by power (simulated BMCs; `power` in SeedOptions). */
  power: boolean;
  stats: Record<string, number>;
  audit?: AuditRecord[];
  trail?: TrailLine[];
};

const drain = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Runs one seed: a fleet of 4–10 machines with two StatefulSets and a Deployment, the real
 * control plane and agents, 1–4 faults from the catalogue mixed at random, every invariant
 * checked after every clock step, until every node has converged after the last fault healed
 * (or the convergence bound passed). The same seed gives the same run, byte for byte.
 */
export async function runSeed(seed: number, options: SeedOptions = {}): Promise<SeedResult> {
  const rng = new Prng(seed);
  const setup = rng.fork(1);
  const faultRng = rng.fork(2);
  const worldRng = rng.fork(3);
  const basePolicy = options.policy ?? LAB_POLICY;
  const powerRng = rng.fork(4);
  const bmcKinds = (options.kinds ?? FAULT_KINDS).filter((k) => (BMC_FAULT_KINDS as readonly string[]).includes(k));
  const allBmc = options.kinds !== undefined && bmcKinds.length === options.kinds.length;
  const power = options.power ?? (bmcKinds.length > 0 && (allBmc || powerRng.chance(0.5)));
  const policy = power ? withPowerLevels(basePolicy) : basePolicy;
  const kinds = power
    ? (options.kinds ?? FAULT_KINDS)
    : (options.kinds ?? FAULT_KINDS).filter((k) => !(BMC_FAULT_KINDS as readonly string[]).includes(k));
  const machine = options.broken ? brokenMachine(options.broken, policy) : undefined;
  const viewTaken = options.broken ? brokenMembership(options.broken) : undefined;

  const n = options.nodes ?? setup.int(4, 10);
  const nodes = Array.from({ length: n }, (_, i) => `node-${i + 1}`);
  const rebootMs = setup.int(1_000, 3_000);
  // Fleets grow: in half the seeds 1–2 machines join during the warm-up, so every agent's view
  // grows before the faults (the stale-fleet variant is the one that must not keep up with it).
  const warmupJoins = options.growth !== false && setup.chance(0.5) ? setup.int(1, 2) : 0;
  const warmupJoinAt = Array.from({ length: warmupJoins }, () => setup.int(500, WARMUP_MS - 1_500));
  const clock = new VirtualClock(LAB_EPOCH);
  const world = new LabWorld({
    clock,
    rng: worldRng,
    policy,
    ...(machine ? { machine } : {}),
    nodes,
    statefulSets: [
      { name: "db", replicas: Math.min(3, n - 1) },
      { name: "queue", replicas: 2 },
    ],
    deployments: [{ name: "web", replicas: 2 }],
    rebootMs,
    ackWaitMs: LAB_ACK_WAIT_MS,
    unreachableEvictionMs: 340_000,
    bootGate: options.bootGate ?? true,
    agentConfigOf: labAgentConfigs(options.agentConfig ?? LAB_AGENT_CONFIG),
    ...(viewTaken ? { viewTaken } : {}),
    // Most machines have a BMC; the others fail the power level at once (no device) and escalate.
    ...(power
      ? { power: { devices: simBmcDevices({ nodes: withBmc(nodes, powerRng), timeoutMs: 10_000, retries: 1, confirmWithinMs: 8_000 }) } }
      : {}),
  });
  const { checker } = world;
  const failures = checker.failures;

  const unhandled = (err: unknown) => {
    checker.fail(
      "valid-messages",
      clock.now(),
      `unhandled error in the lab path: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`.slice(0, 1_000),
    );
  };
  process.on("unhandledRejection", unhandled);

  const faults: FaultRecord[] = [];
  const outageWindows = () => faults.filter((f) => f.kind === "control-plane-outage");
  const slack = policy.agent.controlPlaneTimeoutMs + policy.agent.peerRoundMs + policy.heartbeat.intervalMs;
  world.machineListeners.push((e) => {
    if (!e.what.startsWith("fenced itself")) return;
    // A peer that reaches the control plane relayed the engine's own verdict: that reboot is the
    // fencing the engine asked for (it started before or without the outage), not an effect of it.
    if (e.what.includes("marked-unhealthy")) return;
    const t = e.at;
    const outage = outageWindows().find((f) => f.at <= t && t <= f.healAt + slack);
    if (!outage) return;
    const node = e.node;
    // Machines another fault acts on (or just did): an agent that cannot count on them may be
    // in a minority, and a minority must fence itself even during an outage.
    const near = (f: FaultRecord) => f.kind !== "control-plane-outage" && f.at <= t && t <= f.healAt + slack;
    const disturbed = new Set(faults.filter(near).flatMap((f) => f.nodes));
    if (disturbed.has(node)) return;
    // The deciding round's questions, not the end of the round, say whom the agent could count
    // on (see outageFenceGroup). A fence the engine asked for did not come from a round.
    const status = world.fleet.status(node);
    const last = status.lastPeerRound;
    const fromRound = !e.what.startsWith("fenced itself: engine request") && last !== undefined && last.at >= t - policy.agent.peerRoundMs;
    // The fleet as this agent knows it (its membership view): what its majority is counted against.
    const view = status.agent?.membership;
    if (!view) return;
    const group = outageFenceGroup({
      node,
      nodes: view.members.map((m) => m.node),
      disturbed,
      reachesNow: (x) => world.fleet.nodes.includes(x) && world.fleet.canReach(node, x) && world.fleet.status(x).agent?.running === true,
      servingWhenAsked: fromRound ? last.serving : undefined,
    });
    const votes = votesOf(view);
    if (group.length * 2 <= votes) return;
    checker.fail(
      "no-reboot-during-outage",
      t,
      `${node} stopped feeding its watchdog during control-plane outage #${outage.id} although it reaches ${group.length} of the ${votes} votes of its membership view v${view.version} (${e.what})`,
      node,
    );
  });

  let ackChecked = 0;
  let auditSeen = 0;
  const auditSeqs = new Set<number>();
  const afterStep = () => {
    const now = clock.now();
    checker.step(now);
    // Every event the engine acknowledged has its audit record.
    const floor = world.engineConsumer.ackFloor();
    if (floor > ackChecked) {
      for (; auditSeen < world.audit.messages.length; auditSeen++) auditSeqs.add(world.audit.messages[auditSeen]!.data.seq);
      for (let seq = ackChecked + 1; seq <= floor; seq++) {
        if (auditSeqs.has(seq) || world.deadLetters.some((d) => d.msgID === `dlq:FL_EVENTS:${seq}`)) continue;
        const ev = world.events.get(seq)!;
        checker.fail(
          "audit-complete",
          now,
          `event #${seq} (${ev.data.type}, ${ev.id}) was acknowledged but has no audit record`,
          ev.key,
          `missing:${seq}`,
        );
      }
      ackChecked = floor;
    }
  };

  let eventsInRun = 0;
  const runUntil = async (until: number, stop?: () => boolean): Promise<boolean> => {
    for (;;) {
      const next = clock.nextDueAt();
      if (next === undefined || next > until) {
        if (clock.now() < until) clock.advanceTo(until);
        await drain();
        afterStep();
        return stop?.() ?? false;
      }
      clock.advanceTo(next);
      await drain();
      afterStep();
      if (stop?.()) return true;
    }
  };

  const started = clock.now();
  let convergedAt: number | null = null;
  let bound: ConvergenceBound = convergenceBound(policy, {
    ackWaitMs: LAB_ACK_WAIT_MS,
    maxRebootMs: rebootMs,
    faultedNodes: 1,
    fleetSize: n,
  });
  let lastHeal = started;
  try {
    await world.start();
    await drain();
    for (const at of warmupJoinAt) {
      clock.setTimeout(() => {
        let k = world.fleet.nodes.length + 1;
        while (world.fleet.nodes.includes(`node-${k}`)) k++;
        const name = `node-${k}`;
        world.note(name, `[warm-up] ${name} joins the fleet`);
        void world.addMachine(name);
      }, at);
    }

    const planned = planFaults(faultRng, {
      kinds,
      count: options.faults ?? faultRng.int(1, 4),
      start: started + WARMUP_MS,
      windowMs: FAULT_WINDOW_MS,
    });
    for (const p of planned) {
      clock.setTimeout(() => {
        void injectFault(world, faultRng, p, { rebootMs }).then((record) => {
          if (record) faults.push(record);
        });
      }, p.at - clock.now());
    }
    const lastInjection = planned.length > 0 ? planned[planned.length - 1]!.at : started + WARMUP_MS;
    const firstFailure = () => failures.length > 0;
    await runUntil(lastInjection + 1, firstFailure);

    lastHeal = Math.max(started + WARMUP_MS, ...faults.map((f) => f.healAt));
    const faulted = new Set(faults.flatMap((f) => (f.nodes.length > 0 ? f.nodes : [])));
    bound = convergenceBound(policy, { ackWaitMs: LAB_ACK_WAIT_MS, maxRebootMs: rebootMs, faultedNodes: faulted.size, fleetSize: n });
    if (options.convergenceBoundMs !== undefined)
      bound = { ...bound, totalMs: options.convergenceBoundMs, explanation: `${options.convergenceBoundMs / 1000}s (given)` };

    // Run until every node has converged and stayed so for a while, or the bound passed.
    const stableMs = 2 * policy.heartbeat.timeoutMs;
    let stableSince: number | null = null;
    const converged = () => {
      const now = clock.now();
      if (now < lastHeal) return false;
      const ok = isConverged(world);
      if (!ok) stableSince = null;
      else stableSince ??= now;
      return stableSince !== null && now - stableSince >= stableMs;
    };
    const stopAfterFailure = () => failures.length > 0 && clock.now() >= failures[0]!.at + 2_000;
    if (failures.length === 0) {
      const done = await runUntil(lastHeal + bound.totalMs, () => converged() || stopAfterFailure());
      if (done && failures.length === 0) convergedAt = stableSince;
    }
    if (failures.length === 0 && convergedAt === null) {
      for (const node of nodes) {
        const why = notConverged(world, node);
        if (why)
          checker.fail(
            "converges",
            clock.now(),
            `${node} has not converged ${clock.now() - lastHeal} ms after the last fault healed (bound ${bound.totalMs} ms = ${bound.explanation}): ${why}`,
            node,
          );
      }
    }
  } catch (err) {
    checker.fail(
      "valid-messages",
      clock.now(),
      `the run threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`.slice(0, 1_000),
    );
  } finally {
    // Events published while the world stops (agents withdrawing their contracts) are after the run.
    eventsInRun = world.events.lastSeq;
    await world.stop().catch(() => {});
    await drain();
    process.off("unhandledRejection", unhandled);
  }

  const audit = world.audit.messages.map((m) => m.data);
  const digest = createHash("sha256");
  for (const r of audit) digest.update(`${JSON.stringify(r)}\n`);
  const operator = nodes
    .map((node) => ({ node, snap: world.snapshotOf(node) }))
    .filter(({ snap }) => snap?.path.startsWith("operator"))
    .map(({ node, snap }) => ({ node, reason: snap!.context.operatorReason ?? "(no reason)" }));

  return {
    seed,
    ok: failures.length === 0,
    failures: [...failures].sort((a, b) => a.at - b.at).map((f) => ({ ...f, at: f.at - started })),
    faultsInjected: faults.length,
    faults: faults.map((f) => ({ ...f, at: f.at - started, healAt: f.healAt - started })),
    nodes,
    virtualMs: clock.now() - started,
    lastHealAtMs: lastHeal - started,
    convergedAtMs: convergedAt === null ? null : convergedAt - started,
    bound,
    events: eventsInRun,
    operator,
    digest: digest.digest("hex"),
    power,
    stats: {
      ...world.stats,
      lostAcks: world.bus.stats.lostAcks,
      lostDeliveries: world.bus.stats.lostDeliveries,
      auditRecords: audit.length,
    },
    ...(options.keep ? { audit, trail: mergedTrail(world, started) } : {}),
  };
}

/**
 * Each machine's agent configuration: `template` rendered for it (its name and lab address) and
 * parsed as `fenceline agent` parses its file. Throws (with the file's problems) on a bad one.
 */
export function labAgentConfigs(template: string): (node: string) => AgentConfig {
  const configs = new Map<string, AgentConfig>();
  return (node) => {
    let config = configs.get(node);
    if (!config) {
      config = parseAgentConfig(JSON.parse(renderAgentConfig(template, { name: node, ip: labNodeIp(node) })), {
        source: "the lab's agent configuration",
      });
      configs.set(node, config);
    }
    return config;
  };
}

/** The machines that have a BMC: each with probability 0.85, at least one. */
function withBmc(nodes: readonly string[], rng: Prng): string[] {
  const chosen = nodes.filter(() => rng.chance(0.85));
  return chosen.length > 0 ? chosen : [nodes[0]!];
}

/** Healthy, or in the operator state with a reason; the machine up and heard; nothing left to do. */
function isConverged(world: LabWorld): boolean {
  if (!world.engineUp || world.engineConsumer.pending > 0) return false;
  for (const c of world.actuatorConsumers.values()) if (c.pending > 0) return false;
  for (const node of world.fleet.nodes) if (notConverged(world, node) !== null) return false;
  return true;
}

function notConverged(world: LabWorld, node: string): string | null {
  const snap = world.snapshotOf(node);
  if (!snap) return "the engine has no state for it";
  const status = world.fleet.status(node);
  // A machine gone for good rests down (remediated, its slot freed), forgotten (out of the fleet),
  // or with an operator when nothing could confirm it fenced (its contract did not allow the
  // engine to assume it by time): the operator's reset or forget is what it waits for.
  const gone = status.dead || (status.power !== "up" && status.poweredOff);
  const operator = snap.path.startsWith("operator") && snap.context.operatorReason !== null;
  if (gone && (snap.path === "down" || snap.path === "forgotten" || operator)) return null;
  // Waiting for a remediation slot that nodes waiting for an operator hold: it waits for a person too.
  if (snap.path === "suspect.requestingSlot") {
    const holders = Object.keys(world.budget.current().slots);
    if (holders.length > 0 && holders.every((n) => world.snapshotOf(n)?.path.startsWith("operator") === true)) return null;
  }
  if (snap.path !== "healthy" && !operator) return `state ${snap.path} since ${snap.context.since}`;
  // Waiting for an operator after a power fence, the machine stays off until a person acts.
  if (operator && status.poweredOff) return null;
  if (status.power !== "up" || status.agent?.running !== true)
    return `machine ${status.power}, agent ${status.agent?.running ? "running" : "not running"}`;
  if (!status.reachesControlPlane) return "cannot reach the control plane";
  if (!world.engineUp) return "the engine is down";
  if (world.engineConsumer.pending > 0) return `${world.engineConsumer.pending} events not yet applied`;
  return null;
}

/** The run's trail (audit, machine events, faults) plus the cluster's events, relative times. */
function mergedTrail(world: LabWorld, started: number): TrailLine[] {
  const cluster = world.cluster
    .events()
    .filter(
      (e) =>
        e.node !== undefined && /^(container|pod\.(force-)?deleted|volume|taint|node\.(crashed|booted|reachable|unreachable))/.test(e.kind),
    )
    .map((e) => ({ at: e.at, node: e.node!, what: `[cluster] ${e.what}` }));
  const all = [...world.trail.map((l, i) => ({ ...l, i })), ...cluster.map((l, i) => ({ ...l, i: world.trail.length + i }))];
  all.sort((a, b) => a.at - b.at || a.i - b.i);
  return all.map(({ at, node, what }) => ({ at: at - started, node, what }));
}

/** A node's lines of the trail (and the fleet-wide ones), one per line, times in seconds. */
export function formatTrail(trail: readonly TrailLine[], node?: string): string {
  return trail
    .filter((l) => node === undefined || l.node === node || l.node === "*")
    .map((l) => `${(l.at / 1000).toFixed(3).padStart(9)}s  ${l.node.padEnd(8)} ${l.what}`)
    .join("\n");
}
