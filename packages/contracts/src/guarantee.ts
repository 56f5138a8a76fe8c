import { formatMs } from "./duration.js";
import type { AgentContract } from "./heartbeat.js";
import { WATCHDOG_METHOD, type FenceLevel, type Policy } from "./policy.js";

/**
 * How a node can be proven fenced: `power` (a configured, checked power-fencing level: a fence
 * agent's confirmed power-off), `watchdog` (its agent's contract lets the engine assume it reset
 * itself by the safe time), or `none` (only a new boot id or an operator).
 */
export type Guarantee = "watchdog" | "power" | "none";

export type FencingGuarantee = {
  guarantee: Guarantee;
  /** Why, in words, for the audit and `fenceline nodes`. */
  reason: string;
  /** The engine may confirm the node fenced by time (the safe time, or watchdog.stop + its timeout). */
  timeBased: boolean;
  /** A contract was reported and falls short of the policy (alert: an agent weaker than the policy). */
  weak: boolean;
};

/**
 * Whether the engine may assume this node fenced by time, and the node's guarantee. Pure: the
 * contract of the agent's last heartbeat (null when none was heard), the policy, and the node's
 * fencing levels (`fencingLevelsOf`; default: the policy's levels). A level with a power method
 * (a fence device, checked at start-up against the devices file) makes it `power`: a fence
 * agent's power-off read back confirms it. Time proves something only where a level has the
 * watchdog and the contract meets the policy.
 */
export function fencingGuarantee(
  contract: AgentContract | null | undefined,
  policy: Policy,
  levels: readonly FenceLevel[] = policy.fencing.levels,
): FencingGuarantee {
  const watchdogLevel = levels.some((l) => l.methods.includes(WATCHDOG_METHOD));
  const watchdog = watchdogGuarantee(contract, policy, watchdogLevel);
  const powerLevel = levels.findIndex((l) => l.methods.some((m) => m !== WATCHDOG_METHOD));
  if (powerLevel >= 0) {
    const methods = levels[powerLevel]!.methods.filter((m) => m !== WATCHDOG_METHOD).join(", ");
    const power = `fenced by power: level ${powerLevel + 1}/${levels.length} [${methods}] powers it off and reads it back`;
    return {
      guarantee: "power",
      reason: `${power}${watchdog.timeBased ? `; also ${watchdog.reason}` : ""}`,
      timeBased: watchdog.timeBased,
      weak: watchdog.weak,
    };
  }
  return { guarantee: watchdog.timeBased ? "watchdog" : "none", ...watchdog };
}

function watchdogGuarantee(
  contract: AgentContract | null | undefined,
  policy: Policy,
  watchdogLevel: boolean,
): Omit<FencingGuarantee, "guarantee"> {
  const no = (reason: string, weak = false) => ({ reason, timeBased: false, weak });
  if (!contract) return no("no fencing contract heard from this node's agent (no agent, or one older than the contract)");
  if (contract.withdrawn) return no("its agent stopped cleanly and disarmed its watchdog: nothing resets the node");
  const { kind, timeoutMs } = contract.watchdog;
  const shortfalls: string[] = [];
  if (kind === "software") shortfalls.push("no watchdog device, only the agent's software reboot timer, which dies with the agent");
  else if (kind === "none") shortfalls.push("it feeds no watchdog device");
  else if (!policy.fencing.watchdogKinds.includes(kind)) {
    shortfalls.push(
      `its ${kind} watchdog is not one the policy trusts (fencing.watchdogKinds: ${policy.fencing.watchdogKinds.join(", ")})`,
    );
  }
  const looser = (what: string, agent: number, required: number) => {
    if (agent > required) shortfalls.push(`${what} ${formatMs(agent)} is longer than the policy's ${formatMs(required)}`);
  };
  looser("its watchdog timeout", Math.max(timeoutMs, contract.timing.watchdogTimeoutMs), policy.agent.watchdogTimeoutMs);
  looser("its controlPlaneTimeoutMs", contract.timing.controlPlaneTimeoutMs, policy.agent.controlPlaneTimeoutMs);
  looser("its peerRoundMs", contract.timing.peerRoundMs, policy.agent.peerRoundMs);
  looser("its heartbeat interval", contract.heartbeatIntervalMs, policy.heartbeat.intervalMs);
  if (contract.membershipVersion === 0) shortfalls.push("it holds no membership view yet");
  if (shortfalls.length > 0) return no(`the agent's contract is weaker than the policy: ${shortfalls.join("; ")}`, true);
  if (!watchdogLevel) return no("none of its fencing levels has the watchdog (fencing.levels)");
  return {
    reason: `${kind} watchdog (${formatMs(timeoutMs)}), timing within the policy, membership view v${contract.membershipVersion}`,
    timeBased: true,
    weak: false,
  };
}

/**
 * A contract that meets `policy` exactly (a hardware watchdog, the policy's timing and heartbeat
 * interval, membership view 1), with `patch` applied: for the simulator's histories and tests.
 */
export function contractMeeting(policy: Policy, patch: Partial<AgentContract> = {}): AgentContract {
  return {
    timing: { ...policy.agent },
    heartbeatIntervalMs: policy.heartbeat.intervalMs,
    watchdog: { kind: "hardware", timeoutMs: policy.agent.watchdogTimeoutMs },
    membershipVersion: 1,
    ...patch,
  };
}
