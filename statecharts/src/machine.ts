import { enqueueActions, setup } from "xstate";
import {
  FENCING_TAINT,
  OUT_OF_SERVICE_TAINT,
  WATCHDOG_METHOD,
  fencingLevelsOf,
  formatMs,
  fencingGuarantee,
  safeTimeOf,
  POWER_METHOD,
  type FenceLevel,
  type CommandKind,
  type CommandRequest,
  type CommandResultData,
  type CommandResultOf,
  type NodeEvent,
  type Policy,
} from "@fenceline/contracts";
import {
  emptyFence,
  initialContext,
  type Emitted,
  type FenceConfirmation,
  type FenceProgress,
  type NodeContext,
  type NodeInput,
} from "./context.js";
import { bootIdOf, driftedServices, parseVersion, signalsAfter, unhealthySince, withoutTimers, withTimer } from "./helpers.js";

/** Timer names the machine uses; the engine's timer service fires them as `timer.fired`. */
export const Timers = {
  suspect: "suspect",
  guardRetry: "guard-retry",
  safeTime: "safe-time",
  watchdogReset: "watchdog-reset",
  fenceTimeout: "fence-timeout",
  stepTimeout: "step-timeout",
  healthyDelay: "healthy-delay",
  reprovisionTimeout: "reprovision-timeout",
  reprovisionRetry: "reprovision-retry",
  untaintRetry: "untaint-retry",
  fenceLevel: "fence-level",
  unfenceRetry: "unfence-retry",
} as const;

/**
 * After a power fence and remediation, the node is powered on again and then, while it stays
 * silent, again after 10 s, 20 s, 40 s and every minute (a refused power-on, or a BMC that
 * carried out a late power-off after it reported the power-on).
 */
export const UNFENCE_RETRY = { firstMs: 10_000, maxMs: 60_000 } as const;

/**
 * Power-off failures that say the method cannot act on this node at all (no such device for it,
 * no agent) or was refused as stale: unfencing does not try it. Any other failure (unreachable,
 * a refused login, a timeout) may heal, and an earlier command may still power the machine off
 * late (a slow BMC): unfencing tries those.
 */
const CANNOT_ACT = new Set(["invalid-config", "not-found", "stale"]);

/** Command kinds that move workloads: never emitted before fencing is confirmed. */
export const REMEDIATION_KINDS = new Set(["pods.delete", "workloads.await-gone"]);

type Ev = NodeEvent;
type Ctx = NodeContext;
type Args = { context: Ctx; event: Ev };

const command = (request: CommandRequest): Emitted => ({ type: "command", request });
const reason = (text: string): Emitted => ({ type: "reason", text });

type Result = CommandResultData;

function result(event: Ev): Result | null {
  return event.type === "command.result" ? event.data : null;
}

/**
 * Whether a result answers the command the machine is waiting for: results echo the taint they
 * were about and the re-provisioning attempt and ticket (a late answer to an earlier one does
 * not count; a result that echoes nothing is taken as the answer).
 */
function answers(context: Ctx, r: Result, expectedTaint?: string): boolean {
  switch (r.kind) {
    case "reprovision":
      if (r.facts?.attempt !== undefined && r.facts.attempt !== context.rejoin.attempt) return false;
      return r.facts?.ticket === undefined || r.facts.ticket === context.reprovisionTicket;
    case "taint.add":
    case "taint.remove":
      return expectedTaint === undefined || r.facts?.taint === undefined || r.facts.taint === expectedTaint;
    default:
      return true;
  }
}

/** A result for the current epoch of a command of `kind` (and, for taints, about `taint`). */
function resultOf<K extends CommandKind>(context: Ctx, event: Ev, kind: K, taint?: string): CommandResultOf<K> | null {
  const r = result(event);
  return r && r.kind === kind && r.epoch === context.epoch && answers(context, r, taint) ? (r as CommandResultOf<K>) : null;
}

/** The `majoritySince` a fleet guard's grant reports, or null. */
function majoritySinceOf(r: Result | null): number | null {
  return r?.kind === "slot.acquire" ? (r.facts?.majoritySince ?? null) : null;
}

/** What the audit says of a confirmation (the same words the machine has always written). */
export function describeConfirmation(c: FenceConfirmation): string {
  switch (c.by) {
    case "reboot":
      return `reboot: boot id ${c.bootIdAtFencing} → ${c.bootId}`;
    case "watchdog":
      return "watchdog stop acknowledged and its timeout passed";
    case "power":
      return "fence agent: powered off";
    case "safe-time":
      return `safe time: silent since ${c.lastSeenAt} with a healthy majority since ${c.majoritySince}`;
    case "operator":
      return `an operator: ${c.reason}`;
  }
}

/** A snapshot written before fencing levels existed lacks their fields: they start empty. */
function fenceOf(context: Ctx): FenceProgress {
  return { ...emptyFence(), ...context.fence };
}

const levelName = (levels: readonly FenceLevel[], i: number) => `level ${i + 1}/${levels.length} [${levels[i]?.methods.join(", ") ?? "?"}]`;

/** Records the first confirmation of this fencing (later ones change nothing). */
function confirm(
  enqueue: { assign(patch: Partial<Ctx>): void; emit(e: Emitted): void },
  context: Ctx,
  confirmation: FenceConfirmation,
): void {
  if (context.fence.confirmedBy !== null) return;
  enqueue.assign({ fence: { ...context.fence, confirmedBy: confirmation } });
  enqueue.emit(reason(`fencing confirmed: ${describeConfirmation(confirmation)}`));
}

/**
 * The node shows life: heartbeats resumed, it (re)joined, or its boot id changed. Every state
 * that reacts to a node coming back does it through this one definition of the three events:
 * - `after: "known-boot"` (healthy, suspect): a boot id other than the one known is a reboot
 *   (`reboot`); `boot.changed` always is one. Otherwise `sameBoot`, in order.
 * - `after: "fencing"` (fencing, remediating): a boot id other than the one the node had when
 *   fencing started is a reboot, whichever of the three says it. Otherwise `sameBoot`.
 * - `after: "any"` (remediation done): any sign of life takes `then`.
 */
function aliveAgain<const T extends object>(o: { after: "any"; then: T }): { "boot.changed": T; "heartbeat.resumed": T; "node.joined": T };
function aliveAgain<const R extends object, const S extends object, const A extends "known-boot" | "fencing">(o: {
  after: A;
  reboot: R;
  sameBoot: readonly S[];
}): {
  "boot.changed": A extends "fencing" ? Array<(R & { guard: "rebootedSinceFencing" }) | S> : R;
  "heartbeat.resumed": Array<(R & { guard: A extends "fencing" ? "rebootedSinceFencing" : "rebooted" }) | S>;
  "node.joined": Array<(R & { guard: A extends "fencing" ? "rebootedSinceFencing" : "rebooted" }) | S>;
};
function aliveAgain(o: { after: "any"; then: object } | { after: "known-boot" | "fencing"; reboot: object; sameBoot: readonly object[] }) {
  if (o.after === "any") return { "boot.changed": o.then, "heartbeat.resumed": o.then, "node.joined": o.then };
  const guarded = [{ guard: o.after === "fencing" ? "rebootedSinceFencing" : "rebooted", ...o.reboot }, ...o.sameBoot];
  return { "boot.changed": o.after === "fencing" ? guarded : o.reboot, "heartbeat.resumed": guarded, "node.joined": guarded };
}

/** Back with another boot than the one known (healthy, suspect): it rejoins and is re-provisioned. */
const rejoinRebooted = { target: "rejoining", actions: ["markRebooted", "observe"] } as const;

/**
 * Creates the node lifecycle machine for a policy. Pure: no I/O, no clock, no randomness. Time
 * comes from the events' `at`; deadlines live in `context.timers` and come back as `timer.fired`.
 */
export function createNodeMachine(policy: Policy) {
  const safeTime = safeTimeOf(policy);
  /**
   * When a silent node may be assumed fenced: `safeTime` after its last sign of life, never in
   * the past, and never before an agent that rode out a control-plane outage had three peer
   * rounds (the one in flight, one that turns the verdict, one that confirms it) to notice that
   * the majority is back without it, plus its watchdog timeout and the margin.
   */
  const afterMajority = 3 * policy.agent.peerRoundMs + policy.agent.watchdogTimeoutMs + policy.agent.marginMs;
  const safeTimeDue = (context: Ctx, now: number) => {
    const lastSeenAt = context.lastSeenAt ?? now;
    const due = Math.max(now, lastSeenAt + safeTime);
    return context.majoritySince !== null && context.majoritySince > lastSeenAt
      ? Math.max(due, context.majoritySince + afterMajority)
      : due;
  };
  const steps = policy.remediation;
  /** What the node's contract lets the engine assume of it, under this policy (decided afresh, never from a stored copy). */
  const guaranteeOf = (context: Ctx) =>
    fencingGuarantee(context.contract, policy, fencingLevelsOf(policy, context.node, context.hostGroup));
  /** Why a silent node is not assumed fenced by time, and what is waited for instead. */
  const noTimeFencing = (context: Ctx) =>
    `not assuming it fenced by time: ${guaranteeOf(context).reason}; waiting for a new boot id${levelsOf(context).some((l) => l.methods.some((m) => m !== WATCHDOG_METHOD)) ? ", a fence agent's power-off" : ""} or an operator (fenceline reset ${context.node} --reason … once it is off)`;
  /** The guard's slot request: its membership view is part of the majority check. */
  const slotRequest = (context: Ctx) => {
    const version = context.contract?.membershipVersion ?? 0;
    return command({
      kind: "slot.acquire",
      params: { controlPlane: context.controlPlane, ...(version > 0 ? { membershipVersion: version } : {}) },
    });
  };

  // ------------------------------------------------------------------ fencing levels
  const levelsOf = (context: Ctx) => fencingLevelsOf(policy, context.node, context.hostGroup);
  const usesWatchdog = (levels: readonly FenceLevel[]) => levels.some((l) => l.methods.includes(WATCHDOG_METHOD));
  /** The command parameters of a power method: its device (none for "power": every device of the node) and the node's host group. */
  const fenceParams = (context: Ctx, method: string) => ({
    ...(method === POWER_METHOD ? {} : { device: method }),
    hostGroup: context.hostGroup,
  });
  const lastLevel = (context: Ctx) => fenceOf(context).level >= levelsOf(context).length - 1;

  /**
   * Starts level `index`: its commands (a power-off per power method, watchdog.stop for the
   * watchdog) and its deadline. The last level has none of its own: it runs until the fencing
   * timeout.
   */
  const startLevel = (context: Ctx, fence: FenceProgress, index: number, at: number) => {
    const levels = levelsOf(context);
    const level = levels[index]!;
    const commands: CommandRequest[] = [];
    const toPowerOn = [...fence.toPowerOn];
    for (const method of level.methods) {
      if (method === WATCHDOG_METHOD) {
        commands.push({
          kind: "watchdog.stop",
          params: { reason: `fencing epoch ${context.epoch}`, ...(context.bootId ? { bootId: context.bootId } : {}) },
        });
      } else {
        commands.push({ kind: "fence.poweroff", params: fenceParams(context, method) });
        if (!toPowerOn.includes(method)) toPowerOn.push(method);
      }
    }
    let timers = withoutTimers(context.timers, Timers.fenceLevel);
    if (index < levels.length - 1) timers = withTimer(timers, Timers.fenceLevel, at + level.timeoutMs);
    return { fence: { ...fence, level: index, toPowerOn }, timers, commands };
  };

  /** A failed power-off of this epoch for a method of the current level. */
  const failsCurrentLevel = (context: Ctx, event: Ev) => {
    const r = resultOf(context, event, "fence.poweroff");
    if (!r || r.ok || context.fence.confirmedBy !== null) return false;
    return levelsOf(context)[fenceOf(context).level]?.methods.includes(r.facts?.method ?? POWER_METHOD) === true;
  };
  const levelTimerFired = (context: Ctx, event: Ev) =>
    event.type === "timer.fired" &&
    event.data.timer === Timers.fenceLevel &&
    context.timers[Timers.fenceLevel] === event.data.due &&
    context.fence.confirmedBy === null;
  const levelFailure = (event: Ev, level: FenceLevel) => {
    const r = result(event);
    return r
      ? `${r.kind} ${r.facts && "method" in r.facts ? `(${r.facts.method}) ` : ""}failed: ${r.reason ?? "no reason given"}`
      : `no confirmation within ${formatMs(level.timeoutMs)}`;
  };
  /** A power method that cannot act on this node has nothing to power on again. */
  const forgetFailedPowerOff = (fence: FenceProgress, event: Ev): FenceProgress => {
    const r = result(event);
    if (r?.kind !== "fence.poweroff" || r.ok || !CANNOT_ACT.has(r.facts?.error ?? "")) return fence;
    const method = r.facts?.method ?? POWER_METHOD;
    return { ...fence, toPowerOn: fence.toPowerOn.filter((m) => m !== method) };
  };

  /**
   * Records the fencing's progress and confirms it once a started level has all its methods:
   * power methods by a power-off read back, the watchdog by time (`timeProof`). A level that
   * started earlier and completes late counts too; time gathered before a watchdog level started
   * is kept until one does.
   */
  const settle = (enqueue: { assign(patch: Partial<Ctx>): void; emit(e: Emitted): void }, context: Ctx, fence: FenceProgress) => {
    if (fence.confirmedBy !== null) return enqueue.assign({ fence });
    const levels = levelsOf(context);
    for (let i = 0; i <= Math.min(fence.level, levels.length - 1); i++) {
      const level = levels[i]!;
      const done = level.methods.every((m) => (m === WATCHDOG_METHOD ? fence.timeProof !== null : fence.poweredOff.includes(m)));
      if (!done) continue;
      const confirmation: FenceConfirmation = level.methods.some((m) => m !== WATCHDOG_METHOD)
        ? { by: "power", device: fence.devices.join(",") || null }
        : fence.timeProof!;
      enqueue.assign({ fence: { ...fence, confirmedBy: confirmation } });
      const words =
        confirmation.by === "safe-time"
          ? `safe time: silent for ${formatMs(safeTime)} with a healthy majority since ${confirmation.majoritySince}`
          : describeConfirmation(confirmation);
      enqueue.emit(reason(`fencing confirmed: ${words}${levels.length > 1 ? ` (${levelName(levels, i)})` : ""}`));
      return;
    }
    enqueue.assign({ fence });
    if (fence.timeProof !== null && fence.timeProof !== context.fence.timeProof) {
      enqueue.emit(
        reason(
          `${describeConfirmation(fence.timeProof)}: kept; it counts once a level with the watchdog starts (now ${levelName(levels, fence.level)})`,
        ),
      );
    }
  };

  return setup({
    types: {
      context: {} as Ctx,
      events: {} as Ev,
      input: {} as NodeInput,
      emitted: {} as Emitted,
    },
    guards: {
      timerIs: ({ context, event }: Args, params: { name: string }) =>
        event.type === "timer.fired" && event.data.timer === params.name && context.timers[params.name] === event.data.due,
      /** The node is alive with a boot id other than the one we knew: it rebooted. */
      rebooted: ({ context, event }: Args) => {
        const bootId = bootIdOf(event);
        return bootId !== null && context.bootId !== null && bootId !== context.bootId;
      },
      /** Every unhealthy signal is gone once this event is applied. */
      recovers: ({ context, event }: Args) => unhealthySince(signalsAfter(context, event)) === null,
      configDrifted: ({ context, event }: Args) => {
        const reported =
          event.type === "heartbeat.resumed" || event.type === "node.joined"
            ? (event.data.checksums ?? context.checksums)
            : context.checksums;
        return driftedServices(reported, context.desiredChecksums).length > 0;
      },
      hasSignals: ({ context }: Args) => unhealthySince(context.signals) !== null,
      holdsSlot: ({ context }: Args) => context.slot,
      slotGranted: ({ event }: Args) => {
        const r = result(event);
        return r !== null && r.kind === "slot.acquire" && r.ok;
      },
      slotRefused: ({ event }: Args) => {
        const r = result(event);
        return r !== null && r.kind === "slot.acquire" && !r.ok;
      },
      unwantedSlot: ({ context, event }: Args) => {
        const r = result(event);
        return r !== null && r.kind === "slot.acquire" && r.ok && !context.slot;
      },
      /** Fencing is confirmed (reboot seen, fence agent, watchdog stop acknowledged, or safe time). */
      fenceConfirmed: ({ context }: Args) => context.fence.confirmedBy !== null,
      /** Confirmed by a new boot: the node is alive again and its old workloads died with the old boot. */
      fenceConfirmedByReboot: ({ context }: Args) => context.fence.confirmedBy?.by === "reboot",
      /** A guard answer to the majority check made when the safe time passed (for this epoch: a late answer to an earlier request does not count). */
      majorityAnswer: ({ context, event }: Args) => {
        const r = result(event);
        return r !== null && r.kind === "slot.acquire" && r.epoch === context.epoch && context.fence.checkingMajority;
      },
      /** Returning before fencing: still tainted, re-provisioning pending, or drifted → rejoin, not healthy. */
      needsRejoin: ({ context }: Args) =>
        context.fencingTaint ||
        context.rejoin.reprovision !== null ||
        driftedServices(context.checksums, context.desiredChecksums).length > 0,
      /** Alive with a boot id other than the one it had when fencing started. */
      rebootedSinceFencing: ({ context, event }: Args) => {
        const bootId = bootIdOf(event);
        return bootId !== null && context.bootIdAtFencing !== null && bootId !== context.bootIdAtFencing;
      },
      resultOk: ({ context, event }: Args, params: { kind: CommandKind; taint?: string }) =>
        resultOf(context, event, params.kind, params.taint)?.ok === true,
      resultFailed: ({ context, event }: Args, params: { kind: CommandKind; taint?: string }) =>
        resultOf(context, event, params.kind, params.taint)?.ok === false,
      stepIsAutomatic: ({ context }: Args) => steps[context.remediation.step]?.strategy === "Automatic",
      stepFailed: ({ context, event }: Args) => {
        const r = result(event);
        return (
          r !== null &&
          r.epoch === context.epoch &&
          !r.ok &&
          context.remediation.pending.includes(r.kind) &&
          answers(context, r, OUT_OF_SERVICE_TAINT.key)
        );
      },
      stepCompleted: ({ context, event }: Args) => {
        const r = result(event);
        if (!r || r.epoch !== context.epoch || !r.ok || !answers(context, r, OUT_OF_SERVICE_TAINT.key)) return false;
        return context.remediation.pending.length > 0 && context.remediation.pending.every((k) => k === r.kind);
      },
      hasNextStep: ({ context }: Args) => context.remediation.step + 1 < steps.length,
      nodeBack: ({ context }: Args) => context.remediation.nodeBack,
      settleFirst: () => policy.rejoin.healthyDelayMs > 0,
      /**
       * Alive with the very boot id it had when fencing started, after fencing was confirmed:
       * its watchdog did not reset it, so the fencing assumption was broken.
       */
      fenceEscaped: ({ context }: Args) =>
        context.fence.confirmedBy !== null &&
        context.fence.confirmedBy.by !== "power" &&
        context.bootIdAtFencing !== null &&
        context.bootId === context.bootIdAtFencing,
      /** A fence.poweroff of this epoch failed, for a method of the current level: the level failed (more levels follow). */
      fenceLevelFailed: ({ context, event }: Args) => failsCurrentLevel(context, event) && !lastLevel(context),
      /** As `fenceLevelFailed`, on the last level: every level failed. */
      lastFenceLevelFailed: ({ context, event }: Args) => failsCurrentLevel(context, event) && lastLevel(context),
      /** The current level's deadline passed (more levels follow). */
      fenceLevelTimedOut: ({ context, event }: Args) => levelTimerFired(context, event) && !lastLevel(context),
      needsReprovision: ({ context }: Args) => context.rejoin.reprovision !== null,
      /** The node's contract lets the engine assume it fenced by time. */
      timeFencing: ({ context }: Args) => guaranteeOf(context).timeBased,
      /** Silent, in a fencing epoch whose fencing was never confirmed (the fencing taint is on). */
      silentUnfenced: ({ context }: Args) =>
        context.signals.heartbeat !== undefined && context.fencingTaint && context.fence.confirmedBy === null,
      attemptsLeft: ({ context }: Args) => context.rejoin.attempt < policy.rejoin.reprovisionAttempts,
      nodeSilent: ({ context }: Args) => context.signals.heartbeat !== undefined,
      /** The `name` deadline passed and the node is silent (no heartbeat) now. */
      timerIsWhileSilent: ({ context, event }: Args, params: { name: string }) =>
        event.type === "timer.fired" &&
        event.data.timer === params.name &&
        context.timers[params.name] === event.data.due &&
        context.signals.heartbeat !== undefined,
    },
    actions: {
      // xstate's init event carries no time: the initial state keeps the input's.
      enterState: enqueueActions(({ enqueue, event, context }) =>
        enqueue.assign({ since: (event as { at?: number }).at ?? context.since }),
      ),
      /** Records what the event says about the node's liveness, boot id and reported state. */
      observe: enqueueActions(({ enqueue, context, event }) => {
        // A configuration report is no sign of life: it never changes the boot id we know (a late
        // report from the previous boot must not undo a reboot), it only fills an unknown one.
        const bootId = event.type === "config.reported" ? (context.bootId ?? event.data.bootId) : (bootIdOf(event) ?? context.bootId);
        const signals = signalsAfter(context, event);
        const patch: Partial<Ctx> = { bootId, signals };
        if (event.type === "heartbeat.missed") {
          patch.lastSeenAt = Math.max(context.lastSeenAt ?? 0, event.data.lastSeenAt);
          // Only when unknown: a known boot id must stay, so a later return with another one reads as a reboot.
          if (context.bootId === null) patch.bootId = event.data.bootId;
        }
        if (event.type === "heartbeat.resumed" || event.type === "node.joined" || event.type === "boot.changed")
          patch.lastSeenAt = event.at;
        if (event.type === "heartbeat.resumed" || event.type === "node.joined") {
          if (event.data.checksums) patch.checksums = event.data.checksums;
        }
        if (event.type === "node.joined") {
          if (event.data.hostGroup) patch.hostGroup = event.data.hostGroup;
          if (event.data.controlPlane !== undefined) patch.controlPlane = event.data.controlPlane;
        }
        if (event.type === "config.reported" && event.data.bootId === bootId) patch.checksums = event.data.checksums;
        // The contract is the one of the agent last heard: a (re)joined or resumed node brings its
        // own (none: an agent that makes no promise), a report of this boot replaces it. A report
        // from an earlier boot is no sign of this one.
        let contract = context.contract;
        let peerUrl = context.peerUrl;
        if (event.type === "heartbeat.resumed" || event.type === "node.joined") {
          contract = event.data.contract ?? null;
          peerUrl = event.data.peerUrl ?? null;
        }
        if (event.type === "contract.reported" && event.data.bootId === bootId) {
          contract = event.data.contract;
          peerUrl = event.data.peerUrl ?? peerUrl;
        }
        if (contract !== context.contract) patch.contract = contract;
        if (peerUrl !== context.peerUrl) patch.peerUrl = peerUrl;
        if (event.type === "config.desired") {
          patch.desiredChecksums = event.data.checksums;
          if (event.data.hostGroup) patch.hostGroup = event.data.hostGroup;
        }
        // The guarantee follows the contract and the node's fencing levels (its host group's).
        const guarantee = fencingGuarantee(contract, policy, fencingLevelsOf(policy, context.node, patch.hostGroup ?? context.hostGroup));
        if (guarantee.reason !== context.guarantee?.reason || guarantee.guarantee !== context.guarantee?.guarantee)
          patch.guarantee = guarantee;
        enqueue.assign(patch);
      }),
      explain: enqueueActions(({ enqueue }, params: { text: string }) => enqueue.emit(reason(params.text))),
      explainResult: enqueueActions(({ enqueue, event }) => {
        const r = result(event);
        if (r) enqueue.emit(reason(`${r.kind} ${r.ok ? "succeeded" : "failed"}${r.reason ? `: ${r.reason}` : ""}`));
      }),
      releaseSlot: enqueueActions(({ enqueue, context }) => {
        if (!context.slot) return;
        enqueue.emit(command({ kind: "slot.release", params: {} }));
        enqueue.assign({ slot: false });
      }),
      releaseUnwantedSlot: enqueueActions(({ enqueue }) => {
        enqueue.emit(command({ kind: "slot.release", params: {} }));
        enqueue.emit(reason("a remediation slot arrived after the node recovered: released"));
      }),
      clearTimers: enqueueActions(({ enqueue, context }, params: { names: string[] }) =>
        enqueue.assign({ timers: withoutTimers(context.timers, ...params.names) }),
      ),
      notePause: enqueueActions(({ enqueue, event }) => {
        if (event.type === "operator.pause") enqueue.assign({ pausedReason: event.data.reason });
      }),
      markReprovision: enqueueActions(({ enqueue }, params: { why: string }) =>
        enqueue.assign({ rejoin: { attempt: 0, reprovision: params.why } }),
      ),
      markRebooted: enqueueActions(({ enqueue, context, event }) => {
        const bootId = bootIdOf(event);
        enqueue.assign({ rejoin: { attempt: 0, reprovision: `rebooted (boot id ${context.bootId} → ${bootId})` } });
      }),
      markDriftOrNothing: enqueueActions(({ enqueue, context }) => {
        if (context.rejoin.reprovision !== null) return;
        const drifted = driftedServices(context.checksums, context.desiredChecksums);
        enqueue.assign({
          rejoin: { attempt: 0, reprovision: drifted.length > 0 ? `configuration drift in ${drifted.join(", ")}` : null },
        });
      }),

      // suspect
      armSuspectTimer: enqueueActions(({ enqueue, context, event }) => {
        const start = unhealthySince(context.signals) ?? event.at;
        const due = Math.max(event.at, start + policy.unhealthyDurationMs);
        enqueue.assign({ timers: withTimer(context.timers, Timers.suspect, due) });
        enqueue.emit(
          reason(
            `unhealthy since ${start} (${Object.keys(context.signals).sort().join(", ")}); fencing after ${formatMs(policy.unhealthyDurationMs)}`,
          ),
        );
      }),
      requestSlot: enqueueActions(({ enqueue, context }) => {
        if (context.slot) return;
        enqueue.emit(slotRequest(context));
      }),
      takeSlot: enqueueActions(({ enqueue, event }) => {
        enqueue.assign({ slot: true, majoritySince: majoritySinceOf(result(event)) });
      }),
      armGuardRetry: enqueueActions(({ enqueue, context, event }) => {
        const r = result(event);
        enqueue.emit(
          reason(
            `fleet guard refused a remediation slot: ${r?.reason ?? "no reason given"}; asking again in ${formatMs(policy.fleet.retryMs)}`,
          ),
        );
        enqueue.assign({ timers: withTimer(context.timers, Timers.guardRetry, event.at + policy.fleet.retryMs) });
      }),

      // fencing
      startFencing: enqueueActions(({ enqueue, context, event }) => {
        const epoch = context.epoch + 1;
        const levels = levelsOf(context);
        let timers = withTimer(context.timers, Timers.fenceTimeout, event.at + policy.fencing.timeoutMs);
        // Counted from the last sign of life, but never a deadline in the past. Only where a level
        // can count it (without a watchdog level, time proves nothing) and for a node whose
        // contract promises it resets itself.
        const assumedFencedAt = safeTimeDue(context, event.at);
        const watchdogLevel = usesWatchdog(levels);
        const byTime = watchdogLevel && guaranteeOf(context).timeBased;
        if (byTime && context.signals.heartbeat !== undefined) timers = withTimer(timers, Timers.safeTime, assumedFencedAt);
        const started = startLevel({ ...context, epoch, timers }, emptyFence(), 0, event.at);
        enqueue.assign({
          epoch,
          bootIdAtFencing: context.bootId,
          timers: started.timers,
          fence: started.fence,
          unfenceAttempt: 0,
          remediation: { step: 0, strategy: null, pending: [], nodeBack: false },
        });
        enqueue.emit(command({ kind: "taint.add", params: { taint: FENCING_TAINT } }));
        enqueue.assign({ fencingTaint: true });
        for (const c of started.commands) enqueue.emit(command(c));
        const silent = !watchdogLevel
          ? "no level fences by watchdog: only a power-off read back or a new boot confirms"
          : context.signals.heartbeat === undefined
            ? "still heartbeating: waiting for a positive confirmation"
            : !byTime
              ? `silent since ${context.lastSeenAt}; ${noTimeFencing(context)}`
              : `silent since ${context.lastSeenAt}: assumed fenced at ${assumedFencedAt} (safe time ${formatMs(safeTime)}${context.majoritySince !== null && context.majoritySince > (context.lastSeenAt ?? event.at) && assumedFencedAt === context.majoritySince + afterMajority ? ", counted from the return of a healthy majority" : ""})`;
        enqueue.emit(
          reason(
            `fencing, epoch ${epoch}; ${silent}${levels.length > 1 || levels[0]!.methods.some((m) => m !== WATCHDOG_METHOD) ? `; ${levelName(levels, 0)}` : ""}`,
          ),
        );
      }),
      /** A power method powered the node off and read it back: proof, when its level (a started one) is complete. */
      notePoweredOff: enqueueActions(({ enqueue, context, event }) => {
        const r = resultOf(context, event, "fence.poweroff");
        if (!r) return;
        const fence = fenceOf(context);
        const method = r.facts?.method ?? "power";
        const devices = (r.facts?.device ?? method).split(",").filter((d) => !fence.devices.includes(d));
        settle(enqueue, context, {
          ...fence,
          poweredOff: [...new Set([...fence.poweredOff, method])],
          devices: [...fence.devices, ...devices],
        });
      }),
      /** The current level failed (a method's error, or its deadline): the next level starts. */
      escalateFencing: enqueueActions(({ enqueue, context, event }) => {
        const levels = levelsOf(context);
        const fence = forgetFailedPowerOff(fenceOf(context), event);
        const why = `${levelName(levels, fence.level)}: ${levelFailure(event, levels[fence.level]!)}`;
        const next = startLevel(context, { ...fence, failed: [...fence.failed, why] }, fence.level + 1, event.at);
        enqueue.assign({ timers: next.timers });
        for (const c of next.commands) enqueue.emit(command(c));
        enqueue.emit(reason(`fencing ${why}; escalating to ${levelName(levels, fence.level + 1)}`));
        settle(enqueue, { ...context, timers: next.timers }, next.fence);
      }),
      /** The last level failed: an operator decides. */
      everyLevelFailed: enqueueActions(({ enqueue, context, event }) => {
        const levels = levelsOf(context);
        const fence = forgetFailedPowerOff(fenceOf(context), event);
        const failed = [...fence.failed, `${levelName(levels, fence.level)}: ${levelFailure(event, levels[fence.level]!)}`];
        const text = `every fencing level failed: ${failed.join("; ")}`;
        enqueue.assign({ fence: { ...fence, failed }, operatorReason: text });
        enqueue.emit(reason(`operator required: ${text}`));
      }),
      /** Any other fence result: a failed power-off of an earlier level may still say the node was never powered off. */
      noteFenceResult: enqueueActions(({ enqueue, context, event }) => {
        const r = resultOf(context, event, "fence.poweroff");
        if (!r || r.ok) return;
        enqueue.assign({ fence: forgetFailedPowerOff(fenceOf(context), event) });
      }),
      confirmByWatchdog: enqueueActions(({ enqueue, context, event }) => {
        if (!guaranteeOf(context).timeBased) return void enqueue.emit(reason(`watchdog reset deadline passed; ${noTimeFencing(context)}`));
        const fence = fenceOf(context);
        settle(enqueue, context, {
          ...fence,
          timeProof: { by: "watchdog", ackedAt: fence.watchdogStopAckedAt, resetBy: event.type === "timer.fired" ? event.data.due : null },
        });
      }),
      confirmByOperator: enqueueActions(({ enqueue, context, event }) =>
        confirm(enqueue, context, { by: "operator", reason: event.type === "operator.reset" ? event.data.reason : "operator reset" }),
      ),
      confirmByReboot: enqueueActions(({ enqueue, context, event }) =>
        confirm(enqueue, context, { by: "reboot", bootIdAtFencing: context.bootIdAtFencing, bootId: bootIdOf(event) }),
      ),
      armWatchdogReset: enqueueActions(({ enqueue, context, event }) => {
        if (!guaranteeOf(context).timeBased) {
          enqueue.assign({ fence: { ...context.fence, watchdogStopAckedAt: event.at } });
          enqueue.emit(reason(`agent stopped feeding its watchdog; ${noTimeFencing(context)}`));
          return;
        }
        const due = event.at + policy.agent.watchdogTimeoutMs + policy.agent.marginMs;
        enqueue.assign({
          fence: { ...context.fence, watchdogStopAckedAt: event.at },
          timers: withTimer(context.timers, Timers.watchdogReset, due),
        });
        enqueue.emit(reason(`agent stopped feeding its watchdog: reset by ${due}`));
      }),
      rearmSafeTime: enqueueActions(({ enqueue, context, event }) => {
        if (context.timers[Timers.safeTime] !== undefined || context.lastSeenAt === null) return;
        if (!guaranteeOf(context).timeBased) return void enqueue.emit(reason(`silent again; ${noTimeFencing(context)}`));
        enqueue.assign({ timers: withTimer(context.timers, Timers.safeTime, safeTimeDue(context, event.at)) });
      }),
      aliveDuringFencing: enqueueActions(({ enqueue, context }) => {
        // Whatever time had proven (the safe time, or a watchdog reset deadline) is void now.
        enqueue.assign({ timers: withoutTimers(context.timers, Timers.safeTime), fence: { ...fenceOf(context), timeProof: null } });
        enqueue.emit(
          reason(
            "the node is alive with the same boot id: the safe time no longer applies; waiting for its watchdog reset or a fence agent",
          ),
        );
      }),
      noteOperatorReason: enqueueActions(({ enqueue }, params: { text: string }) => {
        enqueue.assign({ operatorReason: params.text });
        enqueue.emit(reason(`operator required: ${params.text}`));
      }),

      // remediating
      selectStep: enqueueActions(({ enqueue, context }) => {
        const step = steps[context.remediation.step]!;
        if (step.strategy === "Automatic") return;
        enqueue.assign({ remediation: { ...context.remediation, strategy: step.strategy } });
      }),
      askServerVersion: enqueueActions(({ enqueue, context, event }) => {
        const step = steps[context.remediation.step]!;
        enqueue.assign({ timers: withTimer(context.timers, Timers.stepTimeout, event.at + step.timeoutMs) });
        enqueue.emit(command({ kind: "cluster.version", params: {} }));
      }),
      strategyFromVersion: enqueueActions(({ enqueue, context, event }) => {
        const r = resultOf(context, event, "cluster.version");
        const version = r?.ok && r.facts ? parseVersion(r.facts.serverVersion) : null;
        const oos = version !== null && (version[0] > 1 || (version[0] === 1 && version[1] >= 28));
        const strategy = oos ? "OutOfServiceTaint" : "ResourceDeletion";
        enqueue.assign({ remediation: { ...context.remediation, strategy } });
        enqueue.emit(reason(`Automatic: Kubernetes ${version ? version.join(".") : "version unknown"} → ${strategy}`));
      }),
      runStep: enqueueActions(({ enqueue, context, event }) => {
        const step = steps[context.remediation.step]!;
        const strategy = context.remediation.strategy ?? "ResourceDeletion";
        let pending: string[];
        if (strategy === "OutOfServiceTaint") {
          enqueue.emit(command({ kind: "taint.add", params: { taint: OUT_OF_SERVICE_TAINT } }));
          enqueue.emit(command({ kind: "workloads.await-gone", params: { timeoutMs: step.timeoutMs } }));
          pending = ["taint.add", "workloads.await-gone"];
        } else {
          // No VolumeAttachment deletion: the attach-detach controller owns them (docs/kubernetes.md).
          enqueue.emit(command({ kind: "pods.delete", params: {} }));
          pending = ["pods.delete"];
        }
        enqueue.assign({
          remediation: { ...context.remediation, strategy, pending },
          timers: withTimer(context.timers, Timers.stepTimeout, event.at + step.timeoutMs),
        });
        enqueue.emit(
          reason(`remediation step ${context.remediation.step + 1}/${steps.length}: ${strategy} (timeout ${formatMs(step.timeoutMs)})`),
        );
      }),
      settleResult: enqueueActions(({ enqueue, context, event }) => {
        const r = result(event);
        if (!r || !r.ok || r.epoch !== context.epoch || !answers(context, r, OUT_OF_SERVICE_TAINT.key)) return;
        const pending = [...context.remediation.pending];
        const index = pending.indexOf(r.kind);
        if (index >= 0) pending.splice(index, 1);
        enqueue.assign({ remediation: { ...context.remediation, pending } });
      }),
      escalate: enqueueActions(({ enqueue, context }) => {
        const current = steps[context.remediation.step]!;
        const next = steps[context.remediation.step + 1]!;
        enqueue.emit(reason(`${context.remediation.strategy ?? current.strategy} did not complete: escalating to ${next.strategy}`));
        if (context.remediation.strategy === "OutOfServiceTaint") {
          enqueue.emit(command({ kind: "taint.remove", params: { taint: OUT_OF_SERVICE_TAINT } }));
        }
        enqueue.assign({
          remediation: { ...context.remediation, step: context.remediation.step + 1, strategy: null, pending: [] },
        });
      }),
      finishRemediation: enqueueActions(({ enqueue, context }) => {
        enqueue.assign({
          remediation: { ...context.remediation, pending: [] },
          timers: withoutTimers(context.timers, Timers.stepTimeout),
        });
        if (context.remediation.strategy === "OutOfServiceTaint") {
          enqueue.emit(command({ kind: "taint.remove", params: { taint: OUT_OF_SERVICE_TAINT } }));
        }
        enqueue.emit(reason(`workloads moved off the node (${context.remediation.strategy})`));
      }),
      /**
       * Unfencing: the workloads moved and the node is still away after a power fence: power it
       * on again (through every method that may have powered it off) so that it boots and
       * rejoins; and again later while it stays silent.
       */
      unfence: enqueueActions(({ enqueue, context, event }) => {
        const fence = fenceOf(context);
        if (policy.fencing.unfence !== "after-remediation" || fence.toPowerOn.length === 0 || context.remediation.nodeBack) return;
        const attempt = (context.unfenceAttempt ?? 0) + 1;
        const delay = Math.min(UNFENCE_RETRY.maxMs, UNFENCE_RETRY.firstMs * 2 ** (attempt - 1));
        for (const method of fence.toPowerOn) enqueue.emit(command({ kind: "fence.poweron", params: fenceParams(context, method) }));
        enqueue.assign({ unfenceAttempt: attempt, timers: withTimer(context.timers, Timers.unfenceRetry, event.at + delay) });
        enqueue.emit(
          reason(
            `${attempt === 1 ? "unfencing" : `still away: unfencing again (attempt ${attempt})`}: powering the node on through ${fence.toPowerOn.join(", ")} so it boots and rejoins; again in ${formatMs(delay)} if it stays silent`,
          ),
        );
      }),
      noteBack: enqueueActions(({ enqueue, context }) => enqueue.assign({ remediation: { ...context.remediation, nodeBack: true } })),
      noteGone: enqueueActions(({ enqueue, context }) => enqueue.assign({ remediation: { ...context.remediation, nodeBack: false } })),

      // rejoining
      decideRejoin: enqueueActions(({ enqueue, context }) => {
        if (context.rejoin.reprovision !== null) return;
        if (context.bootIdAtFencing !== null && context.bootId !== context.bootIdAtFencing) {
          enqueue.assign({ rejoin: { attempt: 0, reprovision: `rebooted (boot id ${context.bootIdAtFencing} → ${context.bootId})` } });
          return;
        }
        const drifted = driftedServices(context.checksums, context.desiredChecksums);
        if (drifted.length > 0) enqueue.assign({ rejoin: { attempt: 0, reprovision: `configuration drift in ${drifted.join(", ")}` } });
      }),
      armHealthyDelay: enqueueActions(({ enqueue, context, event }) =>
        enqueue.assign({ timers: withTimer(context.timers, Timers.healthyDelay, event.at + policy.rejoin.healthyDelayMs) }),
      ),
      reprovision: enqueueActions(({ enqueue, context, event }) => {
        const attempt = context.rejoin.attempt + 1;
        const why = context.rejoin.reprovision ?? "requested";
        enqueue.assign({
          rejoin: { ...context.rejoin, attempt },
          reprovisionTicket: context.reprovisionTicket + 1,
          timers: withTimer(context.timers, Timers.reprovisionTimeout, event.at + policy.rejoin.reprovisionTimeoutMs),
        });
        enqueue.emit(
          command({
            kind: "reprovision",
            params: { hostGroup: context.hostGroup, reason: why, attempt, ticket: context.reprovisionTicket + 1 },
          }),
        );
        enqueue.emit(reason(`re-provisioning (attempt ${attempt}/${policy.rejoin.reprovisionAttempts}): ${why}`));
      }),
      armReprovisionRetry: enqueueActions(({ enqueue, context, event }) => {
        const delay = policy.rejoin.reprovisionBackoffMs * 2 ** Math.max(0, context.rejoin.attempt - 1);
        enqueue.assign({
          timers: withTimer(withoutTimers(context.timers, Timers.reprovisionTimeout), Timers.reprovisionRetry, event.at + delay),
        });
        enqueue.emit(reason(`re-provisioning attempt ${context.rejoin.attempt} failed; retrying in ${formatMs(delay)}`));
      }),
      untaint: enqueueActions(({ enqueue }) => {
        enqueue.emit(command({ kind: "taint.remove", params: { taint: FENCING_TAINT } }));
      }),
      armUntaintRetry: enqueueActions(({ enqueue, context, event }) =>
        enqueue.assign({ timers: withTimer(context.timers, Timers.untaintRetry, event.at + policy.fleet.retryMs) }),
      ),
      finishRejoin: enqueueActions(({ enqueue }) => {
        enqueue.assign({
          fence: emptyFence(),
          unfenceAttempt: 0,
          bootIdAtFencing: null,
          rejoin: { attempt: 0, reprovision: null },
          operatorReason: null,
          fencingTaint: false,
          remediation: { step: 0, strategy: null, pending: [], nodeBack: false },
        });
        enqueue.emit(reason("rejoined: taints removed, slot released"));
      }),
      acknowledgeOperator: enqueueActions(({ enqueue, event }) => {
        const why = event.type === "operator.reset" ? event.data.reason : "operator reset";
        enqueue.assign({
          bootIdAtFencing: null,
          fence: emptyFence(),
          unfenceAttempt: 0,
          rejoin: { attempt: 0, reprovision: `operator reset: ${why}` },
          operatorReason: null,
        });
      }),
      clearPause: enqueueActions(({ enqueue }) => enqueue.assign({ pausedReason: null })),
      clearOperator: enqueueActions(({ enqueue }) => enqueue.assign({ operatorReason: null })),
      /** Leaving a remediation before it finished: the out-of-service taint must not stay behind. */
      dropRemediation: enqueueActions(({ enqueue, context }) => {
        if (context.remediation.strategy === "OutOfServiceTaint" && context.remediation.pending.length > 0) {
          enqueue.emit(command({ kind: "taint.remove", params: { taint: OUT_OF_SERVICE_TAINT } }));
        }
        enqueue.assign({ remediation: { ...context.remediation, pending: [] } });
      }),
      enterDown: enqueueActions(({ enqueue, context }) => {
        if (context.slot) {
          enqueue.emit(command({ kind: "slot.release", params: {} }));
          enqueue.assign({ slot: false });
        }
        enqueue.emit(
          reason(
            "its workloads are gone and it is still silent: down, its remediation slot freed; it rejoins when it is heard again, or leaves the fleet when forgotten (fenceline forget)",
          ),
        );
      }),
      enterForgotten: enqueueActions(({ enqueue, context, event }) => {
        const why = event.type === "node.forgotten" ? event.data.reason : "forgotten";
        if (context.slot) enqueue.emit(command({ kind: "slot.release", params: {} }));
        enqueue.assign({
          slot: false,
          timers: {},
          forgottenReason: why,
          pausedReason: null,
          operatorReason: null,
          fence: { ...context.fence, checkingMajority: false },
        });
        enqueue.emit(reason(`forgotten (${why}): it leaves the fleet and the membership; it joins again if its agent is heard`));
      }),
      clearForgotten: enqueueActions(({ enqueue }) => enqueue.assign({ forgottenReason: null })),
      markOperatorReset: enqueueActions(({ enqueue, event }) => {
        const why = event.type === "operator.reset" ? event.data.reason : "operator reset";
        enqueue.assign({ rejoin: { attempt: 0, reprovision: `operator reset: ${why}` }, operatorReason: null });
        enqueue.emit(reason(`reset by an operator (${why}): re-provisioned when it rejoins`));
      }),
      silentAgain: enqueueActions(({ enqueue, context }) => {
        enqueue.emit(
          reason(
            context.fence.confirmedBy !== null
              ? "the node went silent again after it came back: its new boot may run workloads, so it is suspect again and will be fenced with a new epoch"
              : "the node went silent mid-rejoin: suspect again",
          ),
        );
      }),
      abortRemediation: enqueueActions(({ enqueue, context }) => {
        if (context.remediation.strategy === "OutOfServiceTaint") {
          enqueue.emit(command({ kind: "taint.remove", params: { taint: OUT_OF_SERVICE_TAINT } }));
        }
        enqueue.emit(reason("the node is back with a new boot: its old workloads are gone, so remediation stops and the node rejoins"));
      }),
      checkMajority: enqueueActions(({ enqueue, context }) => {
        enqueue.assign({ fence: { ...context.fence, checkingMajority: true } });
        enqueue.emit(slotRequest(context));
        enqueue.emit(reason("safe time passed: asking the fleet guard whether a healthy majority held meanwhile"));
      }),
      settleMajority: enqueueActions(({ enqueue, context, event }) => {
        const r = result(event);
        if (!r) return;
        const since = majoritySinceOf(r);
        const fence = { ...context.fence, checkingMajority: false };
        // The node showed life while the guard was asked: the safe time no longer applies (see aliveDuringFencing).
        if (context.signals.heartbeat === undefined) {
          enqueue.assign({ fence });
          enqueue.emit(
            reason(
              "the node is alive with the same boot id: the majority answer no longer matters; waiting for its watchdog reset or a fence agent",
            ),
          );
          return;
        }
        if (!r.ok || since === null) {
          enqueue.assign({ fence, timers: withTimer(context.timers, Timers.safeTime, event.at + policy.fleet.retryMs) });
          enqueue.emit(
            reason(
              `no healthy majority now${r.reason ? ` (${r.reason})` : ""}: not assuming the node fenced; asking again in ${formatMs(policy.fleet.retryMs)}`,
            ),
          );
          return;
        }
        if (!guaranteeOf(context).timeBased) {
          enqueue.assign({ fence });
          enqueue.emit(reason(noTimeFencing(context)));
          return;
        }
        const due = safeTimeDue({ ...context, majoritySince: since }, event.at);
        if (due <= event.at) {
          enqueue.assign({ majoritySince: since });
          settle(enqueue, context, {
            ...fenceOf(context),
            ...fence,
            timeProof: { by: "safe-time", lastSeenAt: context.lastSeenAt, majoritySince: since },
          });
          return;
        }
        enqueue.assign({ fence, majoritySince: since, timers: withTimer(context.timers, Timers.safeTime, due) });
        enqueue.emit(reason(`the healthy majority only returned at ${since}: assumed fenced at ${due}`));
      }),
    },
  }).createMachine({
    id: "node",
    context: ({ input }) => initialContext(input),
    initial: "healthy",
    on: {
      "config.desired": { actions: "observe" },
      "config.reported": { actions: "observe" },
      "signal.unhealthy": { actions: "observe" },
      "signal.healthy": { actions: "observe" },
      "heartbeat.missed": { actions: "observe" },
      "heartbeat.resumed": { actions: "observe" },
      "node.joined": { actions: "observe" },
      "boot.changed": { actions: "observe" },
      "command.result": [{ guard: "unwantedSlot", actions: "releaseUnwantedSlot" }, { actions: "explainResult" }],
      "contract.reported": { actions: "observe" },
      // Pause works in every state: what was under way stops (the fencing taint stays), the slot is freed.
      "operator.pause": { target: ".paused", actions: ["dropRemediation", "notePause"] },
      "operator.resume": { actions: { type: "explain", params: { text: "resume ignored: the node is not paused" } } },
      "operator.reset": { actions: "markOperatorReset" },
      "node.forgotten": { target: ".forgotten", actions: "dropRemediation" },
    },
    states: {
      healthy: {
        entry: "enterState",
        on: {
          "heartbeat.missed": { target: "suspect", actions: "observe" },
          "signal.unhealthy": { target: "suspect", actions: "observe" },
          ...aliveAgain({ after: "known-boot", reboot: rejoinRebooted, sameBoot: [{ actions: "observe" }] }),
          "operator.pause": { target: "paused", actions: "notePause" },
          "operator.reset": { target: "rejoining", actions: "markOperatorReset" },
        },
      },

      suspect: {
        entry: ["enterState", "armSuspectTimer"],
        exit: { type: "clearTimers", params: { names: [Timers.suspect, Timers.guardRetry] } },
        initial: "waiting",
        on: {
          "heartbeat.missed": { actions: "observe" },
          "signal.unhealthy": { actions: "observe" },
          ...aliveAgain({
            after: "known-boot",
            reboot: rejoinRebooted,
            sameBoot: [{ guard: "recovers", target: "recovered", actions: "observe" }, { actions: "observe" }],
          }),
          "signal.healthy": [{ guard: "recovers", target: "recovered", actions: "observe" }, { actions: "observe" }],
          "operator.pause": { target: "paused", actions: "notePause" },
        },
        states: {
          waiting: {
            on: {
              "timer.fired": { guard: { type: "timerIs", params: { name: Timers.suspect } }, target: "requestingSlot" },
            },
          },
          requestingSlot: {
            entry: "requestSlot",
            always: { guard: "holdsSlot", target: "#node.fencing" },
            on: {
              "command.result": [
                { guard: "slotGranted", target: "#node.fencing", actions: "takeSlot" },
                { guard: "slotRefused", actions: "armGuardRetry" },
                { actions: "explainResult" },
              ],
              "timer.fired": { guard: { type: "timerIs", params: { name: Timers.guardRetry } }, target: "requestingSlot", reenter: true },
            },
          },
        },
      },

      /** Recovered before fencing: a config check decides between healthy and re-provisioning. */
      recovered: {
        always: [
          { guard: "needsRejoin", target: "rejoining", actions: "markDriftOrNothing" },
          { target: "healthy", actions: ["releaseSlot", { type: "explain", params: { text: "recovered before fencing: nothing done" } }] },
        ],
      },

      fencing: {
        entry: ["enterState", "startFencing"],
        exit: { type: "clearTimers", params: { names: [Timers.safeTime, Timers.watchdogReset, Timers.fenceTimeout, Timers.fenceLevel] } },
        always: [
          { guard: "fenceConfirmedByReboot", target: "rejoining" },
          { guard: "fenceConfirmed", target: "remediating" },
        ],
        on: {
          ...aliveAgain({
            after: "fencing",
            reboot: { actions: ["confirmByReboot", "observe"] },
            sameBoot: [{ actions: ["observe", "aliveDuringFencing"] }],
          }),
          "heartbeat.missed": { actions: ["observe", "rearmSafeTime"] },
          // An operator confirms the node is fenced (powered off or cut off by hand): its workloads move.
          "operator.reset": { actions: "confirmByOperator" },
          "command.result": [
            { guard: "majorityAnswer", actions: "settleMajority" },
            { guard: { type: "resultOk", params: { kind: "fence.poweroff" } }, actions: "notePoweredOff" },
            { guard: "lastFenceLevelFailed", target: "operator", actions: "everyLevelFailed" },
            { guard: "fenceLevelFailed", actions: "escalateFencing" },
            { guard: { type: "resultOk", params: { kind: "watchdog.stop" } }, actions: "armWatchdogReset" },
            { guard: "unwantedSlot", actions: "releaseUnwantedSlot" },
            { actions: ["noteFenceResult", "explainResult"] },
          ],
          "timer.fired": [
            {
              guard: { type: "timerIs", params: { name: Timers.fenceTimeout } },
              target: "operator",
              actions: {
                type: "noteOperatorReason",
                params: { text: `no fencing confirmation within ${formatMs(policy.fencing.timeoutMs)}` },
              },
            },
            { guard: "fenceLevelTimedOut", actions: "escalateFencing" },
            { guard: { type: "timerIs", params: { name: Timers.safeTime } }, actions: "checkMajority" },
            {
              guard: { type: "timerIsWhileSilent", params: { name: Timers.watchdogReset } },
              actions: "confirmByWatchdog",
            },
            {
              guard: { type: "timerIs", params: { name: Timers.watchdogReset } },
              actions: {
                type: "explain",
                params: { text: "watchdog reset deadline passed but the node still heartbeats with the same boot id: not confirmed" },
              },
            },
          ],
        },
      },

      remediating: {
        entry: "enterState",
        exit: { type: "clearTimers", params: { names: [Timers.stepTimeout, Timers.unfenceRetry] } },
        initial: "selecting",
        on: {
          ...aliveAgain({
            after: "fencing",
            reboot: { target: "#node.rejoining", actions: ["observe", "abortRemediation"] },
            sameBoot: [{ actions: ["observe", "noteBack"] }],
          }),
          "heartbeat.missed": { actions: ["observe", "noteGone"] },
          // An operator ends the remediation (the workloads were dealt with by hand).
          "operator.reset": [
            { guard: "nodeBack", target: "#node.rejoining", actions: ["dropRemediation", "markOperatorReset"] },
            { target: "#node.down", actions: ["dropRemediation", "markOperatorReset"] },
          ],
        },
        states: {
          selecting: {
            always: [
              { guard: "stepIsAutomatic", target: "resolving" },
              { target: "running", actions: "selectStep" },
            ],
          },
          resolving: {
            entry: "askServerVersion",
            on: {
              "command.result": [
                { guard: { type: "resultOk", params: { kind: "cluster.version" } }, target: "running", actions: "strategyFromVersion" },
                { guard: { type: "resultFailed", params: { kind: "cluster.version" } }, target: "running", actions: "strategyFromVersion" },
                { actions: "explainResult" },
              ],
              "timer.fired": {
                guard: { type: "timerIs", params: { name: Timers.stepTimeout } },
                target: "running",
                actions: [{ type: "explain", params: { text: "no cluster version in time" } }, "strategyFromVersion"],
              },
            },
          },
          running: {
            entry: "runStep",
            on: {
              "command.result": [
                { guard: "stepFailed", target: "escalating", actions: "explainResult" },
                { guard: "stepCompleted", target: "done", actions: "settleResult" },
                { actions: ["settleResult", "explainResult"] },
              ],
              "timer.fired": {
                guard: { type: "timerIs", params: { name: Timers.stepTimeout } },
                target: "escalating",
                actions: { type: "explain", params: { text: "remediation step timed out" } },
              },
            },
          },
          escalating: {
            always: [
              { guard: "hasNextStep", target: "selecting", actions: "escalate" },
              {
                target: "#node.operator",
                actions: { type: "noteOperatorReason", params: { text: "every remediation in the escalation list failed" } },
              },
            ],
          },
          done: {
            entry: "finishRemediation",
            always: [{ guard: "nodeBack", target: "#node.rejoining" }, { target: "#node.down" }],
          },
        },
      },

      paused: {
        entry: ["enterState", "releaseSlot", { type: "explain", params: { text: "paused by an operator: no remediation until resumed" } }],
        on: {
          "operator.pause": { actions: "notePause" },
          "operator.resume": [
            { guard: "hasSignals", target: "suspect", actions: "clearPause" },
            // Still tainted, rebooted while paused, or drifted: rejoin rather than call it healthy.
            { guard: "needsRejoin", target: "rejoining", actions: ["clearPause", "markDriftOrNothing"] },
            { target: "healthy", actions: "clearPause" },
          ],
          // Reset while paused: resumed, and re-provisioned when it rejoins.
          "operator.reset": [
            { guard: "hasSignals", target: "suspect", actions: ["clearPause", "markOperatorReset"] },
            { target: "rejoining", actions: ["clearPause", "markOperatorReset"] },
          ],
          "boot.changed": { actions: ["markRebooted", "observe"] },
        },
      },

      /**
       * Fenced, its workloads moved, and still silent: its remediation slot is freed (so dead
       * machines do not stop all further remediation); the fencing taint stays. It rejoins when
       * heard again, or leaves the fleet when forgotten.
       */
      down: {
        entry: ["enterState", "enterDown", "unfence"],
        exit: { type: "clearTimers", params: { names: [Timers.unfenceRetry] } },
        on: {
          ...aliveAgain({ after: "any", then: { target: "#node.rejoining", actions: "observe" } }),
          "timer.fired": { guard: { type: "timerIs", params: { name: Timers.unfenceRetry } }, actions: "unfence" },
        },
      },

      /**
       * Forgotten (an operator, or its Node deleted from Kubernetes): out of the fleet and the
       * membership, nothing held, every input but a sign of its agent ignored. Heard again, it
       * comes back as a member: healthy, or rejoining when it was tainted or must be re-provisioned.
       */
      forgotten: {
        entry: ["enterState", "enterForgotten"],
        on: {
          ...aliveAgain({
            after: "any",
            then: [
              { guard: "needsRejoin", target: "#node.rejoining", actions: ["observe", "clearForgotten", "markDriftOrNothing"] },
              { target: "#node.healthy", actions: ["observe", "clearForgotten"] },
            ],
          }),
          "heartbeat.missed": { actions: "observe" },
          "signal.unhealthy": { actions: "observe" },
          "operator.pause": { actions: { type: "explain", params: { text: "pause ignored: the node is forgotten" } } },
          "operator.reset": {
            actions: { type: "explain", params: { text: "reset ignored: the node is forgotten; it joins again when its agent is heard" } },
          },
          "node.forgotten": { actions: { type: "explain", params: { text: "already forgotten" } } },
          "command.result": [{ guard: "unwantedSlot", actions: "releaseUnwantedSlot" }, { actions: "explainResult" }],
        },
      },

      /** Every automatic option failed: the node keeps its taints and slot until a human resets it. */
      operator: {
        entry: "enterState",
        on: {
          "operator.reset": [
            // Silent and never confirmed fenced: the operator's word is the confirmation.
            { guard: "silentUnfenced", target: "remediating", actions: ["confirmByOperator", "clearOperator"] },
            // Silent, its workloads gone: it waits as down until heard.
            { guard: "nodeSilent", target: "down", actions: "acknowledgeOperator" },
            { target: "rejoining", actions: "acknowledgeOperator" },
          ],
          "heartbeat.resumed": { actions: "observe" },
        },
      },

      rejoining: {
        entry: ["enterState", "decideRejoin"],
        exit: {
          type: "clearTimers",
          params: { names: [Timers.healthyDelay, Timers.reprovisionTimeout, Timers.reprovisionRetry, Timers.untaintRetry] },
        },
        initial: "deciding",
        on: {
          "heartbeat.missed": { target: "#node.suspect", actions: ["observe", "silentAgain"] },
          "boot.changed": { target: ".deciding", actions: ["markRebooted", "observe"] },
          "operator.reset": { target: ".deciding", actions: "markOperatorReset" },
        },
        states: {
          deciding: {
            always: [
              {
                guard: "fenceEscaped",
                target: "#node.operator",
                actions: {
                  type: "noteOperatorReason",
                  params: {
                    text: "the node came back with the boot id it had before fencing: it was assumed fenced but its watchdog never reset it",
                  },
                },
              },
              { guard: "settleFirst", target: "settling" },
              { guard: "needsReprovision", target: "reprovisioning" },
              {
                target: "untainting",
                actions: { type: "explain", params: { text: "same boot id, configuration as desired: no re-provisioning" } },
              },
            ],
          },
          settling: {
            entry: "armHealthyDelay",
            on: {
              "timer.fired": {
                guard: { type: "timerIs", params: { name: Timers.healthyDelay } },
                target: "settled",
                actions: { type: "clearTimers", params: { names: [Timers.healthyDelay] } },
              },
            },
          },
          settled: {
            always: [{ guard: "needsReprovision", target: "reprovisioning" }, { target: "untainting" }],
          },
          reprovisioning: {
            entry: "reprovision",
            on: {
              "command.result": [
                {
                  guard: { type: "resultOk", params: { kind: "reprovision" } },
                  target: "untainting",
                  actions: [{ type: "clearTimers", params: { names: [Timers.reprovisionTimeout] } }, "explainResult"],
                },
                {
                  guard: { type: "resultFailed", params: { kind: "reprovision" } },
                  target: "retryingReprovision",
                  actions: "explainResult",
                },
                { actions: "explainResult" },
              ],
              "timer.fired": {
                guard: { type: "timerIs", params: { name: Timers.reprovisionTimeout } },
                target: "retryingReprovision",
                actions: { type: "explain", params: { text: "re-provisioning timed out" } },
              },
            },
          },
          retryingReprovision: {
            always: [
              { guard: "attemptsLeft", target: "reprovisionBackoff" },
              {
                target: "#node.operator",
                actions: {
                  type: "noteOperatorReason",
                  params: { text: `re-provisioning failed ${policy.rejoin.reprovisionAttempts} times` },
                },
              },
            ],
          },
          reprovisionBackoff: {
            entry: "armReprovisionRetry",
            on: {
              "timer.fired": { guard: { type: "timerIs", params: { name: Timers.reprovisionRetry } }, target: "reprovisioning" },
            },
          },
          untainting: {
            entry: "untaint",
            on: {
              "command.result": [
                {
                  guard: { type: "resultOk", params: { kind: "taint.remove", taint: FENCING_TAINT.key } },
                  target: "#node.healthy",
                  actions: ["releaseSlot", "finishRejoin"],
                },
                {
                  guard: { type: "resultFailed", params: { kind: "taint.remove", taint: FENCING_TAINT.key } },
                  actions: ["explainResult", "armUntaintRetry"],
                },
                { actions: "explainResult" },
              ],
              "timer.fired": { guard: { type: "timerIs", params: { name: Timers.untaintRetry } }, target: "untainting", reenter: true },
            },
          },
        },
      },
    },
  });
}

export type NodeMachine = ReturnType<typeof createNodeMachine>;

/** Top-level states, in lifecycle order. */
export const NODE_STATES = [
  "healthy",
  "suspect",
  "fencing",
  "remediating",
  "rejoining",
  "down",
  "paused",
  "operator",
  "forgotten",
] as const;
export type NodeState = (typeof NODE_STATES)[number];
