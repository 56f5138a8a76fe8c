import { engineHasMajority, votesOf, witnessVote, type MembershipView, type Policy } from "@fenceline/contracts";
import { MEMBERSHIP_HISTORY } from "@fenceline/streams";
import type { FleetView, ViewMajority } from "./fleet-guard.js";

/**
 * The longest loss of the majority a tracker may ignore under `policy` (its `minDipMs`):
 * controlPlaneTimeout − heartbeatTimeout, the bound under which ignoring it is sound.
 */
export const minDipMsOf = (policy: Pick<Policy, "agent" | "heartbeat">): number =>
  Math.max(0, policy.agent.controlPlaneTimeoutMs - policy.heartbeat.timeoutMs);

/** A forgotten node has left the fleet: it counts in no size and no majority. */
const FORGOTTEN = "forgotten";

/** When an unbroken run of a majority began, with the dip smoothing of `minDipMs`. */
type Run = { majoritySince: number | null; lostSince: number | null };

/**
 * The fleet guard's view of the fleet. A node counts as healthy only when the engine records it
 * healthy AND its heartbeats are arriving now (or, for a node that never ran an agent, on the
 * engine's record alone): the engine's snapshots lag the event stream (an engine restart, a
 * backlog), and a guard that trusted them alone could count a partitioned majority as healthy.
 * A node with an agent that this tracker has not heard yet (it just started) is not healthy.
 *
 * The majority is tracked for each membership view kept (`onMembership`), since an agent decides
 * with whichever view it holds; without any view, over every node the engine records.
 * `majoritySince` is when the current unbroken run of a healthy strict majority began; `sample()`
 * must be called often (every heartbeat interval or so) so a short loss is not missed.
 */
export function createFleetTracker(options: {
  now: () => number;
  heartbeatTimeoutMs: number;
  /**
   * A loss of the majority shorter than this is ignored for `majoritySince` (new slots are still
   * refused during it). Sound when it is at most controlPlaneTimeout − heartbeatTimeout: an
   * agent only concludes "control-plane outage" after controlPlaneTimeout without contact, and
   * the tracker notices a silence heartbeatTimeout after it began. Smooths heartbeat jitter.
   */
  minDipMs?: number;
}) {
  const { now, heartbeatTimeoutMs } = options;
  const minDipMs = options.minDipMs ?? 0;
  const phases = new Map<string, string>();
  /** Nodes the engine has heard an agent on (their record has a boot id). */
  const agents = new Set<string>();
  const heard = new Map<string, number>();
  /** The lowest membership version each node's heartbeats reported since the last they were newer (see `viewFloor`). */
  const reported = new Map<string, number>();
  const views: MembershipView[] = [];
  const runs = new Map<number, Run>();
  /** The run over every recorded node, used while no membership view exists. */
  const allNodes: Run = { majoritySince: null, lostSince: null };
  let last: FleetView = { fleetSize: 0, healthy: 0, majoritySince: null };

  const isHealthy = (node: string, at: number) => {
    if (phases.get(node) !== "healthy") return false;
    const seen = heard.get(node);
    if (seen === undefined) return !agents.has(node);
    return at - seen <= heartbeatTimeoutMs;
  };

  const advance = (run: Run, majority: boolean, at: number) => {
    if (majority) {
      run.majoritySince ??= at;
      run.lostSince = null;
    } else {
      run.lostSince ??= at;
      if (at - run.lostSince >= minDipMs) run.majoritySince = null;
    }
  };

  function sample(): FleetView {
    const at = now();
    if (views.length === 0) {
      let fleetSize = 0;
      let healthy = 0;
      for (const [node, phase] of phases) {
        if (phase === FORGOTTEN) continue;
        fleetSize += 1;
        if (isHealthy(node, at)) healthy += 1;
      }
      advance(allNodes, fleetSize > 0 && healthy * 2 > fleetSize, at);
      last = { fleetSize, healthy, majoritySince: allNodes.majoritySince };
      return last;
    }
    const majorities: ViewMajority[] = views.map((view) => {
      let healthy = 0;
      for (const m of view.members) if (isHealthy(m.node, at)) healthy += 1;
      const majority = engineHasMajority(view, healthy);
      const run = runs.get(view.version)!;
      advance(run, majority, at);
      return {
        version: view.version,
        members: view.members.length,
        witness: witnessVote(view),
        votes: votesOf(view),
        healthy,
        majority,
        majoritySince: run.majoritySince,
      };
    });
    const current = majorities.at(-1)!;
    last = {
      fleetSize: current.members,
      healthy: current.healthy,
      majoritySince: current.majoritySince,
      witness: current.witness,
      views: majorities,
    };
    return last;
  }

  return {
    /**
     * The engine recorded a node's state (its top-level phase, e.g. "healthy"); `hasAgent`: its
     * record holds a boot id, so its health needs its heartbeats.
     */
    onSnapshot(node: string, phase: string, hasAgent?: boolean) {
      phases.set(node, phase);
      if (hasAgent) agents.add(node);
      sample();
    },
    onDeleted(node: string) {
      phases.delete(node);
      heard.delete(node);
      agents.delete(node);
      reported.delete(node);
      sample();
    },
    /**
     * A heartbeat of the node arrived now, reporting the membership version its agent holds
     * (undefined: an agent older than the contract).
     */
    onHeartbeat(node: string, membershipVersion?: number) {
      heard.set(node, now());
      if (membershipVersion !== undefined && membershipVersion > 0) reported.set(node, membershipVersion);
    },
    /**
     * The oldest membership view `node` may hold as far as this tracker knows: the version in its
     * last heartbeat; the oldest view kept when it runs an agent this tracker has not heard (it
     * started since); undefined for a node without an agent (only the current view matters).
     */
    viewFloor(node: string): number | undefined {
      const last = reported.get(node);
      if (last !== undefined) return last;
      return agents.has(node) ? (views[0]?.version ?? undefined) : undefined;
    },
    /** A membership view (in any order; the last MEMBERSHIP_HISTORY by version are kept). */
    onMembership(view: MembershipView) {
      if (runs.has(view.version)) return;
      runs.set(view.version, { majoritySince: null, lostSince: null });
      views.push(view);
      views.sort((a, b) => a.version - b.version);
      while (views.length > MEMBERSHIP_HISTORY) runs.delete(views.shift()!.version);
      sample();
    },
    sample,
    view: sample,
    /** The last sample, without sampling again. */
    lastSample: () => last,
  };
}
export type FleetTracker = ReturnType<typeof createFleetTracker>;
