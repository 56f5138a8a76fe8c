import { groupHasMajority, votesOf, witnessVote, type MembershipView } from "@fenceline/contracts";

/**
 * The agent's self-fencing decision: a pure function of what it knows after a round of peer
 * questions. No I/O, no clock; the agent feeds it and carries out the answer.
 *
 * Rules, first match wins ("reaches" = the peer says it reaches the control plane; `votes` =
 * the view's members plus the control plane's witness vote in a view of even size):
 *
 * | # | condition                                                          | action        | reason               |
 * |---|--------------------------------------------------------------------|---------------|----------------------|
 * | 1 | control plane lost for less than controlPlaneTimeoutMs             | keep-feeding  | control-plane-ok     |
 * | 2 | a peer that reaches the control plane says we are unhealthy        | stop-feeding  | marked-unhealthy     |
 * | 3 | a peer that reaches the control plane says we are healthy          | keep-feeding  | peer-says-healthy    |
 * | 4 | this agent holds no membership view                                | keep-feeding  | no-membership        |
 * | 5 | this node + the members that answered "lost" are > half the votes  | keep-feeding  | control-plane-outage |
 * | 6 | no peer answered                                                   | stop-feeding  | isolated             |
 * | 7 | otherwise (half the votes or fewer)                                | stop-feeding  | partitioned-minority |
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
 * - Rule 5 counts only members of the view (this node too, if it is one) against the view's
 *   votes, never the witness: the fleet guard remediates by time only with a healthy majority
 *   of every view this node may hold, counting the witness on its own side, so the two majorities
 *   cannot both exist (docs/agent.md, "Why the engine and a cut-off agent can never both act").
 *   Exactly half is not a majority, so both halves of an even split without the witness fence
 *   themselves. A fleet of one keeps feeding: the engine cannot remediate its only node.
 * - Rule 4: an agent that never learned a view has reported version 0 in every heartbeat, and
 *   the engine never assumes such a node fenced by time, so nothing relies on it fencing itself
 *   (and a fresh install whose NATS is not up yet does not reboot every node).
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
  /** This node. */
  node: string;
  /** The membership view this agent holds (null: none learned yet). */
  view: Pick<MembershipView, "witness" | "members"> | null;
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
  | "no-membership"
  | "isolated"
  | "partitioned-minority"
  | "control-plane-outage";

export interface SelfFenceDecision {
  action: SelfFenceAction;
  reason: SelfFenceReason;
  detail: string;
}

export function decideSelfFence(input: SelfFenceInput): SelfFenceDecision {
  const { node, view, controlPlaneLostForMs, controlPlaneTimeoutMs, peersAsked } = input;
  if (controlPlaneLostForMs < controlPlaneTimeoutMs) {
    return {
      action: "keep-feeding",
      reason: "control-plane-ok",
      detail: `control plane silent for ${controlPlaneLostForMs}ms, below the ${controlPlaneTimeoutMs}ms timeout`,
    };
  }

  const answers = uniqueByPeer(input.peerAnswers);
  const connected = answers.filter((a) => a.controlPlane === "reachable");

  const accuser = connected.find((a) => a.verdict === "unhealthy");
  if (accuser) {
    return {
      action: "stop-feeding",
      reason: "marked-unhealthy",
      detail: `peer ${accuser.peer} reaches the control plane and says this node is unhealthy`,
    };
  }
  const voucher = connected.find((a) => a.verdict === "healthy");
  if (voucher) {
    return {
      action: "keep-feeding",
      reason: "peer-says-healthy",
      detail: `peer ${voucher.peer} reaches the control plane and says this node is healthy`,
    };
  }
  if (!view) {
    return {
      action: "keep-feeding",
      reason: "no-membership",
      detail:
        "no membership view learned yet: the engine cannot assume this node fenced by time, so it does not fence itself for want of a majority",
    };
  }

  const members = new Set(view.members.map((m) => m.node));
  const lost = answers.filter((a) => a.controlPlane === "lost" && members.has(a.peer) && a.peer !== node);
  const self = members.has(node) ? 1 : 0;
  const group = self + lost.length;
  const votes = votesOf(view);
  const fleet = `${view.members.length} member(s)${witnessVote(view) ? " + the control plane's witness vote" : ""}`;
  const silent = connected.length > 0 ? `; ${connected.length} connected peer(s) without a verdict do not count` : "";
  const who = `${self ? "this node + " : "(this node is not a member) "}${lost.length} peer(s)`;
  if (groupHasMajority(view, group)) {
    return {
      action: "keep-feeding",
      reason: "control-plane-outage",
      detail: `${group} of ${votes} votes (${who}) lost the control plane: a majority of ${fleet}${silent}`,
    };
  }
  if (answers.length === 0) {
    return { action: "stop-feeding", reason: "isolated", detail: `no peer answered (0 of ${peersAsked} asked; ${fleet})` };
  }
  return {
    action: "stop-feeding",
    reason: "partitioned-minority",
    detail: `only ${group} of ${votes} votes (${who}) lost the control plane: not a strict majority of ${fleet}${silent}`,
  };
}

function uniqueByPeer(answers: readonly PeerReport[]): PeerReport[] {
  const byPeer = new Map<string, PeerReport>();
  for (const answer of answers) if (!byPeer.has(answer.peer)) byPeer.set(answer.peer, answer);
  return [...byPeer.values()];
}
