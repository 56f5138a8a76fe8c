import type { Prng } from "./prng.js";
import type { EngineCrashPoint, LabWorld } from "./world.js";

/**
 * The fault catalogue. Each fault is a small function that acts on the world now and schedules
 * its own healing on the virtual clock. Every fault heals: crashed machines come back, so every
 * node can converge once the last one has healed.
 */
export const FAULT_KINDS_BEFORE_NATS_LOSS = [
  "crash",
  "hang",
  "reboot",
  "network-loss",
  "partition-minority",
  "partition-majority",
  "control-plane-outage",
  "agent-crash",
  "agent-crash-restart",
  "flapping",
  "slow-actuator",
  "failing-actuator",
  "engine-crash",
  "message-chaos",
] as const;
/**
 * The catalogue. A seed draws its faults' kinds from it by position, so a kind added to it
 * changes what many seeds inject: new kinds go at the end, and the catalogue before one was added
 * is kept so that the seeds recorded in tests (and in docs/chaos.md) still replay the run they
 * name (`runSeed(n, { kinds: FAULT_KINDS_BEFORE_NATS_LOSS })`).
 */
export const FAULT_KINDS_BEFORE_BMC = [...FAULT_KINDS_BEFORE_NATS_LOSS, "nats-loss"] as const;
/**
 * A machine's BMC misbehaves while the machine crashes (and comes back later): the power-fencing
 * level fails or is late and fencing escalates, or the power-on after remediation is refused.
 * Drawn only in seeds that fence by power (`runSeed`'s `power`).
 */
export const BMC_FAULT_KINDS = ["bmc-unreachable", "bmc-slow", "bmc-wrong-credentials", "bmc-power-on-fails"] as const;
export const FAULT_KINDS_BEFORE_MEMBERSHIP = [...FAULT_KINDS_BEFORE_BMC, ...BMC_FAULT_KINDS] as const;
/** Fleets whose membership changes, and agents whose contract is weaker than the policy. */
export const FAULT_KINDS = [...FAULT_KINDS_BEFORE_MEMBERSHIP, "node-joins", "never-returns", "node-leaves", "weak-contract"] as const;
export type LabFaultKind = (typeof FAULT_KINDS)[number];

export const FAULT_DESCRIPTIONS: Record<LabFaultKind, string> = {
  crash: "hard crash: the machine stops dead (containers gone), boots again after 2–40 s",
  hang: "kernel hang: nothing runs; a hardware watchdog resets it (back after the watchdog timeout + reboot) or it stays hung 5–40 s",
  reboot: "an administrator reboots the machine (clean agent stop, new boot id)",
  "network-loss": "one machine loses its network for 0.5–30 s; its containers keep running",
  "nats-loss":
    "one machine loses its path to NATS (heartbeats, acks, agent commands, node state lookups) for 0.5–30 s; its kubelet still reaches the API server and its agent its peers",
  "partition-minority": "a minority of machines is cut off from the rest and from the control plane for 2–30 s",
  "partition-majority": "a majority of machines is cut off from the control plane, which stays with the minority, for 2–30 s",
  "control-plane-outage": "NATS is down for 2–30 s: no heartbeat arrives, nothing is published, delivered or acked",
  "agent-crash": "the agent process dies and is not restarted: its armed watchdog resets the machine",
  "agent-crash-restart": "the agent process dies and is restarted 0.2–5 s later (same boot)",
  flapping: "a machine's network flaps: 3–8 losses of 0.2–1.5 s, 0.3–3 s apart",
  "slow-actuator": "the Kubernetes API (or the provisioner) answers 0.5–3 s late for 5–30 s",
  "failing-actuator": "the Kubernetes API (or the provisioner) fails every call for 2–20 s",
  "engine-crash": "the engine dies (idle, after publishing its outputs, or after saving the snapshot) and restarts 0.1–5 s later",
  "message-chaos":
    "for 5–30 s acks are lost (duplicate deliveries), deliveries are lost (late, out-of-order redeliveries), heartbeats are duplicated and delayed up to 250 ms",
  "bmc-unreachable":
    "a machine's BMC does not answer for 5–40 s while the machine crashes (back after 2–40 s): the power level fails and fencing escalates",
  "bmc-slow":
    "a machine's BMC carries power changes out 5–15 s late for 5–40 s while the machine crashes: the power-off may come after the agent gave up",
  "bmc-wrong-credentials":
    "the fence device's password for a machine is wrong for 5–40 s (a rotation not yet rolled out) while the machine crashes: the login is refused at once, not retried, and fencing escalates",
  "bmc-power-on-fails":
    "a machine's BMC refuses to power it on for 5–40 s while the machine crashes: fenced by power, its power-on after remediation is tried again until the BMC takes it",
  "node-joins": "1–2 new machines join the fleet: they boot, their agents learn the fleet from the control plane, every agent's view grows",
  "never-returns":
    "a machine dies and never comes back (powered off for good): remediated, it is down with its slot freed; in half the runs an operator forgets it 5–30 s later",
  "node-leaves":
    "a machine is decommissioned: powered off, then its Node deleted from Kubernetes 1–10 s later (its pods garbage-collected, the node forgotten, the fleet shrinks)",
  "weak-contract":
    "an agent restarts with a contract weaker than the policy (a 3× control-plane timeout, or no watchdog device and the software fallback), then its machine loses its network for 3–20 s: no fencing by time, only its reboot proves it",
};

/** A fault as planned (kind and time) and, once injected, what it did. */
export type FaultRecord = {
  id: number;
  kind: LabFaultKind;
  at: number;
  /** When everything it did is undone (the machine back, the link restored). */
  healAt: number;
  /** Machines it acts on directly (empty for fleet-wide faults). */
  nodes: string[];
  detail: string;
};

export type PlannedFault = { id: number; kind: LabFaultKind; at: number };

/** Picks `count` faults among `kinds`, at random times in [start, start + windowMs). */
export function planFaults(
  rng: Prng,
  options: { kinds: readonly LabFaultKind[]; count: number; start: number; windowMs: number },
): PlannedFault[] {
  const planned: PlannedFault[] = [];
  for (let i = 0; i < options.count; i++) {
    planned.push({ id: i + 1, kind: rng.pick(options.kinds), at: options.start + rng.int(0, options.windowMs - 1) });
  }
  return planned.sort((a, b) => a.at - b.at || a.id - b.id);
}

/**
 * Chooses a target, preferring machines that run a stateful replica (the interesting case), and
 * only machines that are up: a machine that is down already has its return scheduled.
 */
function target(world: LabWorld, rng: Prng, exclude: ReadonlySet<string> = new Set()): string | undefined {
  const up = (n: string) => !exclude.has(n) && world.fleet.status(n).power === "up";
  const stateful = [...new Set(world.cluster.replicas().flatMap((r) => r.runningOn))].filter(up).sort();
  const all = world.fleet.nodes.filter(up);
  if (all.length === 0) return undefined;
  return stateful.length > 0 && rng.chance(0.75) ? rng.pick(stateful) : rng.pick(all);
}

const busChaos = new WeakMap<LabWorld, Set<number>>();

/** Injects one fault now; returns what it does and when it heals. */
export async function injectFault(
  world: LabWorld,
  rng: Prng,
  planned: PlannedFault,
  options: { rebootMs: number },
): Promise<FaultRecord | null> {
  const { clock, fleet, policy } = world;
  const now = clock.now();
  const { id, kind } = planned;
  const record = (nodes: string[], durationMs: number, detail: string): FaultRecord => {
    const r = { id, kind, at: now, healAt: now + durationMs, nodes, detail };
    for (const node of nodes.length > 0 ? nodes : ["*"]) world.note(node, `[fault #${id}] ${kind}: ${detail}`);
    return r;
  };
  const later = (ms: number, fn: () => void | Promise<void>) => clock.setTimeout(() => void fn(), ms);

  switch (kind) {
    case "crash": {
      const node = target(world, rng);
      if (node === undefined) return null;
      const downMs = rng.int(2_000, 40_000);
      await fleet.crash(node, downMs);
      return record([node], downMs, `${node} crashes, back after ${downMs} ms`);
    }
    case "hang": {
      const node = target(world, rng);
      if (node === undefined) return null;
      const reset = rng.chance(0.5);
      const downMs = reset ? policy.agent.watchdogTimeoutMs + options.rebootMs : rng.int(5_000, 40_000);
      await fleet.crash(node, downMs);
      return record(
        [node],
        downMs,
        reset ? `${node} hangs; its hardware watchdog resets it` : `${node} hangs for ${downMs} ms (no watchdog can reset it)`,
      );
    }
    case "reboot": {
      const node = target(world, rng);
      if (node === undefined) return null;
      await fleet.reboot(node);
      return record([node], options.rebootMs, `${node} is rebooted by an administrator`);
    }
    case "network-loss": {
      const node = target(world, rng);
      if (node === undefined) return null;
      const forMs = rng.int(500, 30_000);
      await fleet.networkLoss(node, forMs);
      return record([node], forMs, `${node} loses its network for ${forMs} ms`);
    }
    case "nats-loss": {
      const node = target(world, rng);
      if (node === undefined) return null;
      const forMs = rng.int(500, 30_000);
      await fleet.natsLoss(node, forMs);
      return record([node], forMs, `${node} loses its path to NATS for ${forMs} ms (its kubelet still reaches the API server)`);
    }
    case "partition-minority":
    case "partition-majority": {
      const n = fleet.nodes.length;
      const minority = Math.floor((n - 1) / 2);
      const size = kind === "partition-minority" ? rng.int(1, Math.max(1, minority)) : rng.int(minority + 1, n - 1);
      const group = new Set<string>();
      const everyone = [...world.fleet.nodes].sort();
      while (group.size < size) group.add(target(world, rng, group) ?? rng.pick(everyone.filter((n) => !group.has(n))));
      const nodes = [...group].sort();
      const forMs = rng.int(2_000, 30_000);
      await fleet.partition(nodes, forMs);
      const side =
        kind === "partition-minority" ? "the control plane stays with the majority" : "the control plane stays with the minority";
      return record(nodes, forMs, `${nodes.join(", ")} cut off for ${forMs} ms (${side})`);
    }
    case "control-plane-outage": {
      const forMs = rng.int(2_000, 30_000);
      world.bus.setAvailable(false);
      await fleet.controlPlaneOutage(forMs);
      later(forMs, () => {
        world.bus.setAvailable(true);
        world.controlPlaneReconnected();
      });
      return record([], forMs, `NATS unreachable for ${forMs} ms`);
    }
    case "agent-crash": {
      const node = target(world, rng);
      if (node === undefined) return null;
      await fleet.agentCrash(node);
      return record([node], policy.agent.watchdogTimeoutMs + options.rebootMs, `${node}'s agent dies, not restarted`);
    }
    case "agent-crash-restart": {
      const node = target(world, rng);
      if (node === undefined) return null;
      const restartMs = rng.int(200, 5_000);
      await fleet.agentCrash(node, restartMs);
      // A restart later than the watchdog allows comes too late: the machine is reset first.
      const feedPeriodMs = Math.floor(policy.agent.watchdogTimeoutMs / 3);
      const resetFirst = restartMs >= policy.agent.watchdogTimeoutMs - feedPeriodMs;
      const healMs = resetFirst ? Math.max(restartMs, policy.agent.watchdogTimeoutMs + options.rebootMs) : restartMs;
      return record(
        [node],
        healMs,
        `${node}'s agent dies, restarted after ${restartMs} ms${resetFirst ? " (its watchdog may reset the machine first)" : ""}`,
      );
    }
    case "flapping": {
      const node = target(world, rng);
      if (node === undefined) return null;
      const cycles = rng.int(3, 8);
      let offset = 0;
      for (let i = 0; i < cycles; i++) {
        const lossMs = rng.int(200, 1_500);
        const gapMs = rng.int(300, 3_000);
        const startAt = offset;
        later(startAt, () => fleet.networkLoss(node, lossMs));
        offset += lossMs + gapMs;
      }
      return record([node], offset, `${node}'s network flaps ${cycles} times over ${offset} ms`);
    }
    case "slow-actuator":
    case "failing-actuator": {
      const which = rng.chance(0.7) ? "api" : "provisioner";
      const faults = which === "api" ? world.apiFaults : world.provisionerFaults;
      const slow = kind === "slow-actuator";
      const forMs = slow ? rng.int(5_000, 30_000) : rng.int(2_000, 20_000);
      const delayMs = rng.int(500, 3_000);
      faults.set(id, slow ? { kind: "slow", delayMs } : { kind: "failing" });
      later(forMs, () => void faults.delete(id));
      const what = which === "api" ? "the Kubernetes API" : "the provisioner";
      return record([], forMs, slow ? `${what} answers ${delayMs} ms late for ${forMs} ms` : `${what} fails every call for ${forMs} ms`);
    }
    case "engine-crash": {
      const point: EngineCrashPoint = rng.pick(["idle", "after-outputs", "after-snapshot"] as const);
      const downMs = rng.int(100, 5_000);
      world.crashEngine(point, downMs);
      return record([], downMs, `the engine crashes (${point}) and restarts after ${downMs} ms`);
    }
    case "bmc-unreachable":
    case "bmc-slow":
    case "bmc-wrong-credentials":
    case "bmc-power-on-fails": {
      const bmcs = world.bmcs;
      const node = target(world, rng);
      if (node === undefined || !bmcs) return null;
      const fault = kind.slice("bmc-".length) as "unreachable" | "slow" | "wrong-credentials" | "power-on-fails";
      const forMs = rng.int(5_000, 40_000);
      const downMs = rng.int(2_000, 40_000);
      bmcs.setFault(node, fault, true);
      later(forMs, () => bmcs.setFault(node, fault, false));
      await fleet.crash(node, downMs);
      return record(
        [node],
        Math.max(forMs, downMs),
        `${node}'s BMC ${fault} for ${forMs} ms; ${node} crashes, back after ${downMs} ms (unless powered off)`,
      );
    }
    case "node-joins": {
      const count = rng.int(1, 2);
      const joined: string[] = [];
      for (let i = 0; i < count; i++) {
        let k = world.fleet.nodes.length + 1;
        while (world.fleet.nodes.includes(`node-${k}`)) k++;
        await world.addMachine(`node-${k}`);
        joined.push(`node-${k}`);
      }
      return record(joined, 0, `${joined.join(", ")} join${joined.length === 1 ? "s" : ""} the fleet`);
    }
    case "never-returns": {
      // Machines dead for good stay in the fleet until forgotten and count against its majority:
      // with a third of the fleet dead nothing could be remediated until an operator forgot them,
      // which is the design, but then the run cannot converge. So at most that many.
      const deadForGood = world.fleet.nodes.filter((n) => world.fleet.status(n).dead && world.snapshotOf(n)?.path !== "forgotten").length;
      if (3 * (deadForGood + 1) >= world.fleet.nodes.length) return null;
      const node = target(world, rng);
      if (node === undefined) return null;
      await fleet.retire(node);
      const forgetAfterMs = rng.chance(0.5) ? rng.int(5_000, 30_000) : null;
      if (forgetAfterMs !== null) later(forgetAfterMs, () => world.forget(node, "never came back"));
      return record(
        [node],
        forgetAfterMs ?? 0,
        `${node} dies and never comes back${forgetAfterMs !== null ? `; an operator forgets it after ${forgetAfterMs} ms` : ""}`,
      );
    }
    case "node-leaves": {
      const node = target(world, rng);
      if (node === undefined) return null;
      await fleet.retire(node);
      const deleteAfterMs = rng.int(1_000, 10_000);
      later(deleteAfterMs, () => world.deleteNode(node));
      return record([node], deleteAfterMs, `${node} is decommissioned: powered off, its Node deleted ${deleteAfterMs} ms later`);
    }
    case "weak-contract": {
      const node = target(world, rng);
      if (node === undefined) return null;
      const current = world.fleet.configOf(node);
      const software = rng.chance(0.5);
      if (software) {
        world.fleet.reconfigure(node, {
          device: "none",
          config: { ...current, watchdog: { ...current.watchdog, fallbackRebootCommand: ["systemctl", "reboot", "-f"] } },
        });
      } else {
        world.fleet.reconfigure(node, {
          config: { ...current, timing: { ...current.timing, controlPlaneTimeoutMs: 3 * current.timing.controlPlaneTimeoutMs } },
        });
      }
      const restartMs = rng.int(200, 2_000);
      await fleet.restartAgent(node, restartMs);
      const lossAt = restartMs + rng.int(3_000, 8_000);
      const lossMs = rng.int(3_000, 20_000);
      later(lossAt, () => fleet.networkLoss(node, lossMs));
      const what = software ? "no watchdog device, the software fallback" : "a 3× control-plane timeout";
      return record(
        [node],
        lossAt + lossMs + policy.agent.watchdogTimeoutMs + options.rebootMs,
        `${node}'s agent restarts with a weaker contract (${what}) and loses its network ${lossAt} ms later for ${lossMs} ms`,
      );
    }
    case "message-chaos": {
      const forMs = rng.int(5_000, 30_000);
      const active = busChaos.get(world) ?? new Set<number>();
      busChaos.set(world, active);
      active.add(id);
      world.bus.chaos = { lostAck: 0.05 + rng.next() * 0.25, lostDelivery: 0.05 + rng.next() * 0.15 };
      world.heartbeatChaos = { duplicate: 0.2, delay: 0.3, maxDelayMs: 250 };
      later(forMs, () => {
        active.delete(id);
        if (active.size > 0) return;
        world.bus.chaos = null;
        world.heartbeatChaos = null;
      });
      return record([], forMs, `lost acks and deliveries, duplicated and delayed heartbeats for ${forMs} ms`);
    }
  }
}
