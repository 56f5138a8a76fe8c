import type { Policy } from "@fenceline/contracts";
import type { FleetView } from "./fleet-guard.js";

/**
 * The longest loss of the majority a tracker may ignore under `policy` (its `minDipMs`):
 * controlPlaneTimeout − heartbeatTimeout, the bound under which ignoring it is sound.
 */
export const minDipMsOf = (policy: Pick<Policy, "agent" | "heartbeat">): number => Math.max(0, policy.agent.controlPlaneTimeoutMs - policy.heartbeat.timeoutMs);

/**
 * The fleet guard's view of the fleet. A node counts as healthy only when the engine records it
 * healthy AND, if it ever sent heartbeats, they are arriving now: the engine's snapshots lag the event stream (an
 * engine restart, a backlog), and a guard that trusted them alone could count a partitioned
 * majority as healthy. `majoritySince` is when the current unbroken run of a healthy strict
 * majority began; `sample()` must be called often (every heartbeat interval or so) so a short
 * loss of the majority is not missed.
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
  let lostSince: number | null = null;
  const phases = new Map<string, string>();
  const heard = new Map<string, number>();
  let majoritySince: number | null = null;

  function count(at: number) {
    let healthy = 0;
    for (const [node, phase] of phases) {
      const last = heard.get(node);
      // A node never heard runs no agent (Kubernetes-only): the engine's state is all there is.
      if (phase === "healthy" && (last === undefined || at - last <= heartbeatTimeoutMs)) healthy += 1;
    }
    return { fleetSize: phases.size, healthy };
  }

  function sample(): FleetView {
    const at = now();
    const { fleetSize, healthy } = count(at);
    if (fleetSize > 0 && healthy * 2 > fleetSize) {
      majoritySince ??= at;
      lostSince = null;
    } else {
      lostSince ??= at;
      if (at - lostSince >= minDipMs) majoritySince = null;
    }
    return { fleetSize, healthy, majoritySince };
  }

  return {
    /** The engine recorded a node's state (its top-level phase, e.g. "healthy"). */
    onSnapshot(node: string, phase: string) {
      phases.set(node, phase);
      sample();
    },
    onDeleted(node: string) {
      phases.delete(node);
      heard.delete(node);
      sample();
    },
    /** A heartbeat of the node arrived now. */
    onHeartbeat(node: string) {
      heard.set(node, now());
    },
    sample,
    view: sample,
  };
}
export type FleetTracker = ReturnType<typeof createFleetTracker>;
