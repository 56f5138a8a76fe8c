/**
 * The agent's self-fencing decision: a pure function of what it knows after a round of peer
 * questions. No I/O, no clock; the agent feeds it and carries out the answer.
 *
 * Rules, first match wins ("reaches" = the peer says it reaches the control plane):
 *
 * | # | condition                                                        | action        | reason               |
 * |---|------------------------------------------------------------------|---------------|----------------------|
 * | 1 | control plane lost for less than controlPlaneTimeoutMs           | keep-feeding  | control-plane-ok     |
 * | 2 | a peer that reaches the control plane says we are unhealthy      | stop-feeding  | marked-unhealthy     |
 * | 3 | a peer that reaches the control plane says we are healthy        | keep-feeding  | peer-says-healthy    |
 * | 4 | no peer answered, and we are not the whole fleet                 | stop-feeding  | isolated             |
 * | 5 | 1 + peers that answered "lost" is a strict majority of the fleet | keep-feeding  | control-plane-outage |
 * | 6 | otherwise (a minority, exactly half included)                    | stop-feeding  | partitioned-minority |
 *
 * Why these semantics:
 * - Only a positive "healthy" from a peer that reaches the control plane is proof of health.
 *   A connected peer with no verdict ("unknown", or none) proves nothing about us, and it is
 *   not cut off either, so it is not counted in our group for rule 5: it stands on the control
 *   plane's side. Counting it as healthy would recreate Self Node Remediation's split brain
 *   (PR #354: peers answering ApiError kept a partitioned node alive forever).
 * - A verdict from a peer that lost the control plane is ignored: it cannot know.
 * - Rule 2 beats rule 3 when peers disagree: wrongly rebooting costs a reboot, wrongly running
 *   on can run a workload twice.
 * - Rule 5 is safe only because the engine never remediates without a healthy majority
 *   (policy `fleet.minHealthy` above 50% while fencing relies on watchdogs): when a majority is
 *   cut off, nobody is remediated, so nobody has to fence itself. Exactly half is not a
 *   majority, so both halves of an even split fence themselves. A fleet of one keeps feeding:
 *   the engine cannot remediate its only node.
 */

export type ControlPlaneView = "reachable" | "lost";
export type PeerVerdict = "unhealthy" | "healthy" | "unknown";

/** One peer's answer to "what do you know about me?". */
export interface PeerReport {
  peer: string;
  controlPlane: ControlPlaneView;
  verdict?: PeerVerdict;
}

export interface SelfFenceInput {
  /** Every node of the fleet, this one included. */
  fleetSize: number;
  controlPlaneLostForMs: number;
  controlPlaneTimeoutMs: number;
  peerAnswers: readonly PeerReport[];
  peersAsked: number;
}

export type SelfFenceAction = "keep-feeding" | "stop-feeding";
export type SelfFenceReason =
  | "control-plane-ok"
  | "marked-unhealthy"
  | "peer-says-healthy"
  | "isolated"
  | "partitioned-minority"
  | "control-plane-outage";

export interface SelfFenceDecision {
  action: SelfFenceAction;
  reason: SelfFenceReason;
  detail: string;
}

export function decideSelfFence(input: SelfFenceInput): SelfFenceDecision {
  const { fleetSize, controlPlaneLostForMs, controlPlaneTimeoutMs, peersAsked } = input;
  if (controlPlaneLostForMs < controlPlaneTimeoutMs) {
    return {
      action: "keep-feeding",
      reason: "control-plane-ok",
      detail: `control plane silent for ${controlPlaneLostForMs}ms, below the ${controlPlaneTimeoutMs}ms timeout`,
    };
  }

  const answers = uniqueByPeer(input.peerAnswers);
  const connected = answers.filter((a) => a.controlPlane === "reachable");
  const lost = answers.filter((a) => a.controlPlane === "lost");

  const accuser = connected.find((a) => a.verdict === "unhealthy");
  if (accuser) {
    return { action: "stop-feeding", reason: "marked-unhealthy", detail: `peer ${accuser.peer} reaches the control plane and says this node is unhealthy` };
  }
  const voucher = connected.find((a) => a.verdict === "healthy");
  if (voucher) {
    return { action: "keep-feeding", reason: "peer-says-healthy", detail: `peer ${voucher.peer} reaches the control plane and says this node is healthy` };
  }

  const group = 1 + lost.length;
  const majority = 2 * group > fleetSize;
  if (answers.length === 0 && !majority) {
    return { action: "stop-feeding", reason: "isolated", detail: `no peer answered (0 of ${peersAsked} asked, fleet of ${fleetSize})` };
  }
  const silent = connected.length > 0 ? `; ${connected.length} connected peer(s) without a verdict do not count` : "";
  if (majority) {
    return {
      action: "keep-feeding",
      reason: "control-plane-outage",
      detail: `${group} of ${fleetSize} nodes (this one + ${lost.length} peer(s)) lost the control plane: a majority${silent}`,
    };
  }
  return {
    action: "stop-feeding",
    reason: "partitioned-minority",
    detail: `only ${group} of ${fleetSize} nodes (this one + ${lost.length} peer(s)) lost the control plane: not a strict majority${silent}`,
  };
}

function uniqueByPeer(answers: readonly PeerReport[]): PeerReport[] {
  const byPeer = new Map<string, PeerReport>();
  for (const answer of answers) if (!byPeer.has(answer.peer)) byPeer.set(answer.peer, answer);
  return [...byPeer.values()];
}
