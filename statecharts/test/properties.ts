import fc from "fast-check";
import {
  COMMAND_KINDS,
  CommandResultData,
  OUT_OF_SERVICE_TAINT,
  createEvent,
  fencingGuarantee,
  type AgentContract,
  type CommandRequest,
  type NodeEvent,
  type NodeEventOf,
  type NodeEventType,
  type Policy,
} from "@fenceline/contracts";
import {
  Timers,
  exportMachine,
  initialState,
  statePath,
  step,
  type Emitted,
  type MachineState,
  type NodeMachine,
} from "@fenceline/statecharts";

/**
 * Random event sequences for one node, and the invariants every run must keep. A sequence is a
 * list of intents ("answer the 2nd outstanding command, with a failure") that `drive` turns into
 * well-formed events against the state reached so far, so that runs get deep into the lifecycle.
 */

/** Boot choices: mostly the boot id the node has now, sometimes another one of a small pool. */
const BOOT_CHOICES = 5;
const bootOf = (choice: number, current: string | null) => (choice < 3 ? (current ?? "b1") : choice === 3 ? "b2" : "b3");
const SIGNALS = ["condition:Ready", "serf"];
const CHECKSUMS = [undefined, { web: "v1" }, { web: "v2" }];
const VERSIONS = [undefined, "1.27", "1.28", "v1.30.1", "garbage"];
const TIMER_NAMES = [...Object.values(Timers), "nonsense"];
/**
 * What a slot.acquire answer says about the healthy majority (the majority check made when the
 * safe time passes): nothing (no majority now), since the start of time, since the node's last
 * heartbeat (the boundary: still "throughout"), or only since now (it just came back).
 */
const MAJORITY = ["none", "always", "lastSeen", "now"] as const;
/**
 * The contract a heartbeat-borne event carries: mostly one that meets the demo policies, some
 * weaker (the software fallback, a looser timing), some none (an agent older than the contract).
 */
const GOOD: AgentContract = {
  timing: { controlPlaneTimeoutMs: 1_000, peerRoundMs: 500, watchdogTimeoutMs: 1_500, marginMs: 1_000 },
  heartbeatIntervalMs: 200,
  watchdog: { kind: "hardware", timeoutMs: 1_500 },
  membershipVersion: 1,
};
const CONTRACTS: Array<AgentContract | undefined> = [
  GOOD,
  GOOD,
  GOOD,
  GOOD,
  GOOD,
  GOOD,
  { ...GOOD, watchdog: { kind: "software", timeoutMs: 1_500 } },
  { ...GOOD, timing: { ...GOOD.timing, controlPlaneTimeoutMs: 3_000 } },
  undefined,
];
const contractOf = (choice: number) => {
  const contract = CONTRACTS[choice];
  return contract ? { contract } : {};
};

export type Intent =
  | { t: "missed"; dt: number; boot: number; ago: number }
  | { t: "resumed"; dt: number; boot: number; sums: number; contract: number }
  | { t: "joined"; dt: number; boot: number; sums: number; group: boolean; contract: number }
  | { t: "contract"; dt: number; boot: number; contract: number }
  | { t: "forget"; dt: number; really: number }
  | { t: "bootChanged"; dt: number; boot: number }
  | { t: "unhealthy"; dt: number; signal: number; ago: number }
  | { t: "healthy"; dt: number; signal: number }
  | { t: "fire"; dt: number; pick: number }
  | { t: "bogusTimer"; dt: number; name: number; offset: number }
  | { t: "answer"; dt: number; pick: number; ok: boolean; stale: boolean; version: number; majority: number }
  | { t: "result"; dt: number; kind: number; ok: boolean; stale: boolean; version: number; majority: number }
  | { t: "pause"; dt: number }
  | { t: "resume"; dt: number }
  | { t: "reset"; dt: number; really: number }
  | { t: "desired"; dt: number; sums: number }
  | { t: "reported"; dt: number; boot: number; sums: number };

const dt = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 500 }), fc.integer({ min: 500, max: 5_000 }));
/** Results succeed four times out of five; one in five carries an older epoch. */
const ok = fc.integer({ min: 0, max: 4 }).map((n) => n !== 0);
const stale = fc.integer({ min: 0, max: 4 }).map((n) => n === 0);
const index = (n: number) => fc.integer({ min: 0, max: n - 1 });
/** Picks mostly among the first few of a list (the next deadline, the latest commands). */
const pick = fc.nat({ max: 19 });
const nearby = (n: number, length: number) => (n < 14 ? n % Math.min(length, 3) : n % length);

const intentArb: fc.Arbitrary<Intent> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant("missed" as const), dt, boot: index(BOOT_CHOICES), ago: fc.nat({ max: 3_000 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("resumed" as const),
      dt,
      boot: index(BOOT_CHOICES),
      sums: index(CHECKSUMS.length),
      contract: index(CONTRACTS.length),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("joined" as const),
      dt,
      boot: index(BOOT_CHOICES),
      sums: index(CHECKSUMS.length),
      group: fc.boolean(),
      contract: index(CONTRACTS.length),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("contract" as const),
      dt,
      boot: index(BOOT_CHOICES),
      contract: fc.integer({ min: 0, max: CONTRACTS.length - 2 }),
    }),
  },
  // A rare event: forgetting sends most runs somewhere they only leave when the node is heard.
  { weight: 1, arbitrary: fc.record({ t: fc.constant("forget" as const), dt, really: fc.nat({ max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("bootChanged" as const), dt, boot: index(BOOT_CHOICES) }) },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant("unhealthy" as const), dt, signal: index(SIGNALS.length), ago: fc.nat({ max: 3_000 }) }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("healthy" as const), dt, signal: index(SIGNALS.length) }) },
  { weight: 8, arbitrary: fc.record({ t: fc.constant("fire" as const), dt, pick }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("bogusTimer" as const),
      dt,
      name: index(TIMER_NAMES.length),
      offset: fc.integer({ min: -2, max: 2 }),
    }),
  },
  {
    weight: 10,
    arbitrary: fc.record({
      t: fc.constant("answer" as const),
      dt,
      pick,
      ok,
      stale,
      version: index(VERSIONS.length),
      majority: index(MAJORITY.length),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("result" as const),
      dt,
      kind: index(COMMAND_KINDS.length),
      ok,
      stale,
      version: index(VERSIONS.length),
      majority: index(MAJORITY.length),
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("pause" as const), dt }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("resume" as const), dt }) },
  // Resets are rarer than they look: in fencing one confirms the fencing, and would cut most runs short.
  { weight: 1, arbitrary: fc.record({ t: fc.constant("reset" as const), dt, really: fc.nat({ max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("desired" as const), dt, sums: fc.integer({ min: 1, max: CHECKSUMS.length - 1 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("reported" as const),
      dt,
      boot: index(BOOT_CHOICES),
      sums: fc.integer({ min: 1, max: CHECKSUMS.length - 1 }),
    }),
  },
);

export const intentsArb = fc.array(intentArb, { minLength: 1, maxLength: 60, size: "max" });

export type Trace = Array<{ event: NodeEvent; state: MachineState; emitted: Emitted[] }>;
export type Run = { initial: MachineState; events: NodeEvent[]; trace: Trace; error: string | null };

const NODE = "n1";

function makeEvent<T extends NodeEventType>(seq: number, type: T, at: number, data: NodeEventOf<T>["data"]): NodeEvent {
  return createEvent(type, { id: `e${seq}`, node: NODE, at, source: "property", data }) as NodeEvent;
}

/** Turns intents into events against the state reached so far, applying each with `step`. */
export function drive(machine: NodeMachine, intents: Intent[]): Run {
  const initial = initialState(machine, NODE, 0);
  let state = initial;
  let now = 0;
  const events: NodeEvent[] = [];
  const trace: Trace = [];
  const outstanding: Array<{ kind: string; epoch: number }> = [];
  const staleOf = (epoch: number, stale: boolean) => (stale ? Math.max(0, epoch - 1) : epoch);
  const facts = (
    kind: string,
    intent: { version: number; majority: number },
    ctx: MachineState["context"],
    at: number,
  ): { facts?: Record<string, string | number> } => {
    if (kind === "cluster.version")
      return VERSIONS[intent.version] !== undefined ? { facts: { serverVersion: VERSIONS[intent.version]! } } : {};
    if (kind !== "slot.acquire") return {};
    switch (MAJORITY[intent.majority]) {
      case "always":
        return { facts: { majoritySince: 0 } };
      case "lastSeen":
        return { facts: { majoritySince: ctx.lastSeenAt ?? 0 } };
      case "now":
        return { facts: { majoritySince: at } };
      default:
        return {};
    }
  };

  // Most nodes are first heard through their agent: a run starts with its node.joined (and the
  // contract of a good agent) unless the first intent is another way in.
  const first = intents[0];
  const lead: Intent[] =
    first && first.t !== "joined" && first.t !== "unhealthy" ? [{ t: "joined", dt: 0, boot: 0, sums: 0, group: false, contract: 0 }] : [];
  for (const [i, intent] of [...lead, ...intents].entries()) {
    const seq = i + 1;
    const at = now + intent.dt;
    const ctx = state.context;
    let event: NodeEvent;
    switch (intent.t) {
      case "missed":
        event = makeEvent(seq, "heartbeat.missed", at, {
          lastSeenAt: Math.max(0, at - intent.ago),
          bootId: bootOf(intent.boot, ctx.bootId),
        });
        break;
      case "resumed": {
        const checksums = CHECKSUMS[intent.sums];
        event = makeEvent(seq, "heartbeat.resumed", at, {
          bootId: bootOf(intent.boot, ctx.bootId),
          incarnation: intent.boot,
          ...(checksums ? { checksums } : {}),
          ...contractOf(intent.contract),
        });
        break;
      }
      case "joined": {
        const checksums = CHECKSUMS[intent.sums];
        event = makeEvent(seq, "node.joined", at, {
          bootId: bootOf(intent.boot, ctx.bootId),
          incarnation: intent.boot,
          ...(checksums ? { checksums } : {}),
          ...(intent.group ? { hostGroup: "web" } : {}),
          ...contractOf(intent.contract),
        });
        break;
      }
      case "contract":
        event = makeEvent(seq, "contract.reported", at, { bootId: bootOf(intent.boot, ctx.bootId), contract: CONTRACTS[intent.contract]! });
        break;
      case "forget":
        event =
          intent.really === 0
            ? makeEvent(seq, "node.forgotten", at, { reason: "property forget" })
            : makeEvent(seq, "operator.resume", at, {});
        break;
      case "bootChanged":
        event = makeEvent(seq, "boot.changed", at, { previousBootId: ctx.bootId ?? "b0", bootId: bootOf(intent.boot, ctx.bootId) });
        break;
      case "unhealthy":
        event = makeEvent(seq, "signal.unhealthy", at, { signal: SIGNALS[intent.signal]!, since: Math.max(0, at - intent.ago) });
        break;
      case "healthy":
        event = makeEvent(seq, "signal.healthy", at, { signal: SIGNALS[intent.signal]! });
        break;
      case "fire": {
        const pending = Object.entries(ctx.timers).sort(([a, x], [b, y]) => x - y || a.localeCompare(b));
        if (pending.length === 0) {
          event = makeEvent(seq, "timer.fired", at, { timer: Timers.suspect, due: at });
          break;
        }
        const [timer, due] = pending[nearby(intent.pick, pending.length)]!;
        event = makeEvent(seq, "timer.fired", Math.max(now, due), { timer, due });
        break;
      }
      case "bogusTimer": {
        const timer = TIMER_NAMES[intent.name]!;
        const due = Math.max(0, (ctx.timers[timer] ?? at) + intent.offset);
        event = makeEvent(seq, "timer.fired", Math.max(at, due), { timer, due });
        break;
      }
      case "answer": {
        if (outstanding.length === 0) {
          event = makeEvent(
            seq,
            "command.result",
            at,
            CommandResultData.parse({
              commandId: `c${seq}`,
              kind: "slot.acquire",
              epoch: ctx.epoch,
              ok: intent.ok,
              ...facts("slot.acquire", intent, ctx, at),
            }),
          );
          break;
        }
        const [command] = outstanding.splice(outstanding.length - 1 - nearby(intent.pick, outstanding.length), 1);
        event = makeEvent(
          seq,
          "command.result",
          at,
          CommandResultData.parse({
            commandId: `c${seq}`,
            kind: command!.kind,
            epoch: staleOf(command!.epoch, intent.stale),
            ok: intent.ok,
            ...facts(command!.kind, intent, ctx, at),
          }),
        );
        break;
      }
      case "result": {
        const kind = COMMAND_KINDS[intent.kind]!;
        event = makeEvent(
          seq,
          "command.result",
          at,
          CommandResultData.parse({
            commandId: `c${seq}`,
            kind,
            epoch: staleOf(ctx.epoch, intent.stale),
            ok: intent.ok,
            ...facts(kind, intent, ctx, at),
          }),
        );
        break;
      }
      case "pause":
        event = makeEvent(seq, "operator.pause", at, { reason: "property pause" });
        break;
      case "resume":
        event = makeEvent(seq, "operator.resume", at, {});
        break;
      case "reset":
        event =
          intent.really === 0
            ? makeEvent(seq, "operator.reset", at, { reason: "property reset" })
            : makeEvent(seq, "operator.resume", at, {});
        break;
      case "desired":
        event = makeEvent(seq, "config.desired", at, { checksums: CHECKSUMS[intent.sums]! });
        break;
      case "reported":
        event = makeEvent(seq, "config.reported", at, { bootId: bootOf(intent.boot, ctx.bootId), checksums: CHECKSUMS[intent.sums]! });
        break;
    }
    events.push(event);
    try {
      const result = step(machine, state, event);
      state = result.state;
      now = event.at;
      trace.push({ event, state, emitted: result.emitted });
      for (const e of result.emitted) if (e.type === "command") outstanding.push({ kind: e.request.kind, epoch: state.context.epoch });
    } catch (error) {
      return { initial, events, trace, error: `step ${seq} (${event.type}) threw: ${String(error)}` };
    }
  }
  return { initial, events, trace, error: null };
}

/** Applies recorded events again from the initial state. */
export function replay(machine: NodeMachine, events: NodeEvent[]): Trace {
  let state = initialState(machine, NODE, 0);
  return events.map((event) => {
    const result = step(machine, state, event);
    state = result.state;
    return { event, state, emitted: result.emitted };
  });
}

/** Moves workloads: never before fencing is confirmed for the current epoch. */
function isRemediation(request: CommandRequest): boolean {
  if (request.kind === "pods.delete" || request.kind === "workloads.await-gone") return true;
  return request.kind === "taint.add" && request.params.taint.key === OUT_OF_SERVICE_TAINT.key;
}

/** The leaf states a node can rest in (transient states are left in the same step). */
export function restingStates(policy: Policy): Set<string> {
  const { states } = exportMachine(policy);
  const parents = new Set(states.map((s) => s.parent).filter((p) => p !== null));
  return new Set(states.filter((s) => !parents.has(s.path) && !s.transient).map((s) => s.path));
}

const TIMER_SET = new Set<string>(Object.values(Timers));

/**
 * The invariants of one run; an empty list when they all hold:
 * (a) no remediation command unless fencing was confirmed earlier in the run for the current epoch;
 * (b) the epoch never decreases; (c) no step throws and every state is a known resting state;
 * (e) a deadline set or moved by an event is not earlier than that event; timers have known names;
 * (f) fencing is never confirmed by time (safe time, watchdog deadline) while the node heartbeats,
 *     and no safe time is even pending then;
 * (g) an epoch whose fencing was confirmed by a reboot never gets a remediation command: the node is
 *     back, and its old workloads died with the old boot;
 * (h) fencing is never confirmed by time (safe time, watchdog deadline) for a node whose contract
 *     does not promise it resets itself (with `policy`).
 */
export function violationsOf(run: Run, resting: Set<string>, policy?: Policy): string[] {
  const violations: string[] = [];
  if (run.error) violations.push(`(c) ${run.error}`);
  const confirmed = new Set<number>();
  const confirmedByReboot = new Set<number>();
  let previous = run.initial;
  for (const [i, { event, state, emitted }] of run.trace.entries()) {
    const where = `step ${i + 1} (${event.type} at ${event.at})`;
    const epoch = state.context.epoch;
    if (previous.context.fence.confirmedBy !== null) confirmed.add(previous.context.epoch);
    for (const e of emitted) {
      if (e.type === "reason" && e.text.startsWith("fencing confirmed")) {
        confirmed.add(epoch);
        if (e.text.startsWith("fencing confirmed: reboot")) confirmedByReboot.add(epoch);
        const byTime = /^fencing confirmed: (safe time|watchdog)/.test(e.text);
        if (byTime && previous.context.signals.heartbeat === undefined)
          violations.push(`(f) ${where}: ${e.text} while the node heartbeats`);
        if (byTime && policy && !fencingGuarantee(previous.context.contract, policy).timeBased) {
          violations.push(
            `(h) ${where}: ${e.text} although its contract does not support it (${fencingGuarantee(previous.context.contract, policy).reason})`,
          );
        }
      }
      if (e.type === "command" && isRemediation(e.request) && !confirmed.has(epoch)) {
        violations.push(`(a) ${where}: ${e.request.kind} emitted in epoch ${epoch} before fencing was confirmed`);
      }
      if (e.type === "command" && isRemediation(e.request) && confirmedByReboot.has(epoch)) {
        violations.push(`(g) ${where}: ${e.request.kind} emitted in epoch ${epoch}, whose fencing was confirmed by a reboot`);
      }
    }
    if (epoch < previous.context.epoch) violations.push(`(b) ${where}: epoch ${previous.context.epoch} → ${epoch}`);
    const path = statePath(state.value);
    if (!resting.has(path)) violations.push(`(c) ${where}: unknown or transient state ${path}`);
    if (path === "fencing" && state.context.timers[Timers.safeTime] !== undefined && state.context.signals.heartbeat === undefined) {
      violations.push(`(f) ${where}: safe time pending (due ${state.context.timers[Timers.safeTime]}) while the node heartbeats`);
    }
    for (const [name, due] of Object.entries(state.context.timers)) {
      if (!TIMER_SET.has(name)) violations.push(`(e) ${where}: unknown timer ${name}`);
      if (previous.context.timers[name] !== due && due < event.at) violations.push(`(e) ${where}: timer ${name} due ${due} < ${event.at}`);
    }
    previous = state;
  }
  return violations;
}
