import {
  DEFAULT_POLICY,
  contractMeeting,
  createEvent,
  type AgentContract,
  type AuditRecord,
  type Command,
  type CommandResultData,
  type NodeEvent,
  type Policy,
} from "@fenceline/contracts";
import { createDecider, fold, timerEventId, type Decider, type NodeSnapshot } from "@fenceline/engine";

/**
 * A synthetic but valid recorded history: many nodes going through realistic lifecycles
 * (crashes, network blips, reboots, unhealthy conditions, operator pauses), with every
 * `timer.fired` at the due time the machine asked for (only while it is still pending, as the
 * engine's timer service does) and every command answered by a simulated actuator (a fleet
 * guard with a budget that sometimes refuses, reprovisioning that sometimes fails). Each event
 * is folded as it is generated, which gives the dues and the audit record the engine would have
 * written. Deterministic for a seed. Generated in chunks so a million events need little memory.
 */

export type HistoryItem = { event: NodeEvent; seq: number; audit: AuditRecord };

export type HistoryOptions = {
  nodes?: number;
  seed?: number;
  policy?: Policy;
  /** Start time of the history (ms since the epoch). */
  start?: number;
  /** Mean time between incidents on one node. */
  incidentEveryMs?: number;
};

/** mulberry32: small, fast, good enough for a workload generator. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Job = { at: number; order: number; node: number; make: () => NodeEvent | null };

/** A binary min-heap on (at, order): events at the same time keep their scheduling order. */
class Queue {
  private heap: Job[] = [];
  get size() {
    return this.heap.length;
  }
  private less(a: Job, b: Job) {
    return a.at < b.at || (a.at === b.at && a.order < b.order);
  }
  push(job: Job) {
    const h = this.heap;
    h.push(job);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  pop(): Job | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

type NodeRuntime = {
  name: string;
  hostGroup: string;
  boot: number;
  /** The machine is powered and its agent heartbeats. */
  up: boolean;
  snapshot: NodeSnapshot | null;
  /** Incarnation of the agent (grows with each boot). */
  incarnation: number;
};

export class HistoryGenerator {
  readonly policy: Policy;
  /** Every agent's contract: one that meets the policy. */
  readonly contract: AgentContract;
  private readonly decider: Decider;
  private readonly random: () => number;
  private readonly queue = new Queue();
  private readonly nodes: NodeRuntime[];
  private readonly slots = new Set<number>();
  private readonly maxSlots: number;
  private readonly incidentEveryMs: number;
  private readonly start: number;
  private order = 0;
  private seq = 0;
  private ids = 0;

  constructor(options: HistoryOptions = {}) {
    this.policy = options.policy ?? DEFAULT_POLICY;
    this.contract = contractMeeting(this.policy);
    // The recorded audit comes from xstate itself: replaying it with the default (fast)
    // interpreter is then a differential check of the two as well.
    this.decider = createDecider(this.policy, undefined, { interpreter: "xstate" });
    this.random = prng(options.seed ?? 1);
    this.incidentEveryMs = options.incidentEveryMs ?? 300_000;
    const count = options.nodes ?? 2_000;
    this.maxSlots = Math.max(1, Math.floor(count * 0.2));
    const start = options.start ?? 1_800_000_000_000;
    this.start = start;
    const groups = ["db", "web", "batch"];
    this.nodes = Array.from({ length: count }, (_, i) => ({
      name: `node-${i + 1}`,
      hostGroup: groups[i % groups.length]!,
      boot: 1,
      up: true,
      snapshot: null,
      incarnation: 1,
    }));
    this.nodes.forEach((n, i) => {
      const at = start + i * 3;
      this.schedule(i, at, () =>
        this.ev(n, "config.desired", at, "config", { checksums: { kubelet: "k1", runtime: "r1" }, hostGroup: n.hostGroup }),
      );
      this.schedule(i, at + 1, () =>
        this.ev(n, "node.joined", at + 1, "heartbeat-detector", {
          bootId: this.bootId(n),
          incarnation: n.incarnation,
          hostGroup: n.hostGroup,
          controlPlane: i < 3,
          checksums: { kubelet: "k1", runtime: "r1" },
          contract: this.contract,
        }),
      );
      this.scheduleIncident(i, at + 1);
    });
  }

  private bootId(n: NodeRuntime) {
    return `${n.name}-boot-${n.boot}`;
  }

  private ev(n: NodeRuntime, type: NodeEvent["type"], at: number, source: string, data: unknown): NodeEvent {
    return createEvent(type, { id: `${source}:${n.name}:${++this.ids}`, node: n.name, at, source, data } as never) as NodeEvent;
  }

  private schedule(node: number, at: number, make: () => NodeEvent | null) {
    this.queue.push({ at: Math.round(at), order: this.order++, node, make });
  }

  private between(lo: number, hi: number) {
    return lo + this.random() * (hi - lo);
  }

  private scheduleIncident(i: number, after: number) {
    const wait = -Math.log(1 - this.random()) * this.incidentEveryMs;
    this.schedule(i, after + Math.max(1_000, wait), () => this.incident(i));
  }

  private healthy(n: NodeRuntime) {
    return n.up && n.snapshot?.path === "healthy";
  }

  /** Starts an incident on a healthy node (or tries again later). Returns its first event. */
  private incident(i: number): NodeEvent | null {
    const n = this.nodes[i]!;
    const now = this.now;
    if (n.snapshot?.path === "operator") {
      // Someone looks at it and resets it.
      this.scheduleIncident(i, now);
      return this.ev(n, "operator.reset", now, "operator:bench", { reason: "checked by hand" });
    }
    if (!this.healthy(n)) {
      this.scheduleIncident(i, now);
      return null;
    }
    const roll = this.random();
    const missed = () =>
      this.ev(n, "heartbeat.missed", now, "heartbeat-detector", {
        lastSeenAt: now - this.policy.heartbeat.timeoutMs,
        bootId: this.bootId(n),
      });
    if (roll < 0.4) {
      // Crash: silent until it boots again, 40-120 s later.
      n.up = false;
      this.schedule(i, now + this.between(40_000, 120_000), () => this.comeBack(i, true));
      return missed();
    }
    if (roll < 0.65) {
      // Network blip: back with the same boot before the unhealthy duration ends.
      n.up = false;
      this.schedule(i, now + this.between(300, this.policy.unhealthyDurationMs * 0.8), () => this.comeBack(i, false));
      return missed();
    }
    if (roll < 0.78) {
      // Quick reboot: the detector sees a new boot id.
      const previousBootId = this.bootId(n);
      n.boot++;
      n.incarnation++;
      this.scheduleIncident(i, now);
      return this.ev(n, "boot.changed", now, "heartbeat-detector", { previousBootId, bootId: this.bootId(n) });
    }
    if (roll < 0.9) {
      // A node condition flaps and clears before it lasts long enough.
      const since = now - Math.round(this.between(0, 500));
      this.schedule(i, now + this.between(500, this.policy.unhealthyDurationMs * 0.6), () => {
        this.scheduleIncident(i, this.now);
        return this.ev(n, "signal.healthy", this.now, "condition-detector", { signal: "condition:Ready" });
      });
      return this.ev(n, "signal.unhealthy", now, "condition-detector", { signal: "condition:Ready", since, detail: "KubeletNotReady" });
    }
    if (roll < 0.95) {
      // An agent restart reports its configuration (no state change).
      this.scheduleIncident(i, now);
      return this.ev(n, "config.reported", now, "agent", { bootId: this.bootId(n), checksums: { kubelet: "k1", runtime: "r1" } });
    }
    // Maintenance: paused for a while, then resumed.
    this.schedule(i, now + this.between(10_000, 60_000), () => {
      this.scheduleIncident(i, this.now);
      return this.ev(n, "operator.resume", this.now, "operator:bench", { reason: "maintenance done" });
    });
    return this.ev(n, "operator.pause", now, "operator:bench", { reason: "kernel upgrade" });
  }

  private comeBack(i: number, rebooted: boolean): NodeEvent {
    const n = this.nodes[i]!;
    n.up = true;
    if (rebooted) {
      n.boot++;
      n.incarnation++;
    }
    this.scheduleIncident(i, this.now + 30_000);
    return this.ev(n, "heartbeat.resumed", this.now, "heartbeat-detector", {
      bootId: this.bootId(n),
      incarnation: n.incarnation,
      checksums: { kubelet: "k1", runtime: "r1" },
      contract: this.contract,
    });
  }

  /** What a simulated actuator answers to a command, and when. */
  private answer(i: number, c: Command) {
    const n = this.nodes[i]!;
    const result = (delay: number, ok: boolean, extra: { reason?: string; facts?: Record<string, string | number | boolean> } = {}) =>
      this.schedule(
        i,
        c.issuedAt + delay,
        () =>
          createEvent("command.result", {
            id: `result:${c.id}`,
            node: n.name,
            at: this.now,
            source: `actuator:${c.kind.split(".")[0]}`,
            // The facts the switch below gives are the ones its kind reports (contracts' ResultFacts).
            data: { commandId: c.id, kind: c.kind, epoch: c.epoch, ok, ...extra } as CommandResultData,
          }) as NodeEvent,
      );
    // What the real actuators echo back, so the machine can tell which command a result answers.
    const echoed: Record<string, string | number> =
      c.kind === "taint.add" || c.kind === "taint.remove"
        ? { taint: c.params.taint.key }
        : c.kind === "reprovision"
          ? {
              attempt: c.params.attempt,
              ...((c.params as { ticket?: number }).ticket !== undefined ? { ticket: (c.params as { ticket?: number }).ticket! } : {}),
            }
          : {};
    const answer = (delay: number, ok: boolean, extra: { reason?: string; facts?: Record<string, string | number | boolean> } = {}) =>
      result(delay, ok, { ...extra, ...(Object.keys(echoed).length > 0 || extra.facts ? { facts: { ...echoed, ...extra.facts } } : {}) });
    switch (c.kind) {
      case "slot.acquire":
        if (this.slots.size < this.maxSlots || this.slots.has(i)) {
          this.slots.add(i);
          // The simulated fleet always kept a healthy majority (the guard reports since when).
          answer(this.between(2, 20), true, { facts: { majoritySince: this.start } });
        } else {
          answer(this.between(2, 20), false, {
            reason: `${this.slots.size} nodes already in remediation, maxUnhealthy allows ${this.maxSlots}`,
          });
        }
        break;
      case "slot.release":
        this.slots.delete(i);
        answer(this.between(2, 20), true);
        break;
      case "watchdog.stop":
        if (n.up) {
          // The agent stops feeding its watchdog: the machine resets.
          answer(this.between(5, 50), true);
          n.up = false;
          this.schedule(i, c.issuedAt + this.policy.heartbeat.timeoutMs, () =>
            this.ev(n, "heartbeat.missed", this.now, "heartbeat-detector", { lastSeenAt: c.issuedAt, bootId: this.bootId(n) }),
          );
          this.schedule(i, c.issuedAt + this.policy.agent.watchdogTimeoutMs + this.between(5_000, 20_000), () => this.comeBack(i, true));
        } else {
          answer(this.between(1_000, 2_000), false, { reason: "agent unreachable" });
        }
        break;
      case "cluster.version":
        answer(this.between(5, 40), true, { facts: { serverVersion: "1.30" } });
        break;
      case "workloads.await-gone":
        answer(this.between(1_000, 6_000), true, { facts: { gone: true } });
        break;
      case "reprovision":
        if (this.random() < 0.05) answer(this.between(2_000, 8_000), false, { reason: "provision step exited with 1" });
        else answer(this.between(2_000, 8_000), true);
        break;
      default:
        answer(this.between(10, 200), true);
    }
  }

  private now = 0;

  /** The next `count` events of the history (fewer only if the fleet goes quiet, which it does not). */
  next(count: number): HistoryItem[] {
    const out: HistoryItem[] = [];
    while (out.length < count) {
      const job = this.queue.pop();
      if (!job) break;
      this.now = job.at;
      const event = job.make();
      if (!event) continue;
      const n = this.nodes[job.node]!;
      const seq = ++this.seq;
      const result = fold(this.decider, n.snapshot, event, seq);
      n.snapshot = result.snapshot;
      for (const c of result.commands) this.answer(job.node, c);
      for (const [timer, due] of Object.entries(result.audit.timers.set)) {
        this.schedule(job.node, Math.max(due, event.at), () => {
          if (n.snapshot?.context.timers[timer] !== due) return null;
          return createEvent("timer.fired", {
            id: timerEventId(n.name, timer, due),
            node: n.name,
            at: this.now,
            source: "timer",
            data: { timer, due },
          }) as NodeEvent;
        });
      }
      out.push({ event, seq, audit: result.audit });
    }
    return out;
  }
}
