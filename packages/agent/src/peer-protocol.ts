import { NodeName } from "@fenceline/contracts";
import type { ControlPlaneView, PeerVerdict } from "./self-fence-decision.js";

/** "What do you know about node `about`?", asked by `from` (in practice always about itself). */
export interface PeerQuestion {
  from: string;
  about: string;
}

/** The answer; `node` names the answering agent so a misrouted answer is never counted. */
export interface PeerAnswer {
  node: string;
  controlPlane: ControlPlaneView;
  verdict?: PeerVerdict;
}

export type PeerParse<T> = { ok: true; value: T } | { ok: false; error: string };

const VIEWS: readonly string[] = ["reachable", "lost"] satisfies ControlPlaneView[];
const VERDICTS: readonly string[] = ["unhealthy", "healthy", "unknown"] satisfies PeerVerdict[];

export function parsePeerQuestion(json: unknown): PeerParse<PeerQuestion> {
  if (!isRecord(json)) return { ok: false, error: "a peer question must be a JSON object" };
  const from = NodeName.safeParse(json.from);
  const about = NodeName.safeParse(json.about);
  if (!from.success) return { ok: false, error: `from: ${from.error.issues[0]?.message ?? "invalid"}` };
  if (!about.success) return { ok: false, error: `about: ${about.error.issues[0]?.message ?? "invalid"}` };
  return { ok: true, value: { from: from.data, about: about.data } };
}

export function parsePeerAnswer(json: unknown): PeerParse<PeerAnswer> {
  if (!isRecord(json)) return { ok: false, error: "a peer answer must be a JSON object" };
  const node = NodeName.safeParse(json.node);
  if (!node.success) return { ok: false, error: `node: ${node.error.issues[0]?.message ?? "invalid"}` };
  if (typeof json.controlPlane !== "string" || !VIEWS.includes(json.controlPlane)) {
    return { ok: false, error: `controlPlane: must be one of ${VIEWS.join(", ")}` };
  }
  if (json.verdict !== undefined && (typeof json.verdict !== "string" || !VERDICTS.includes(json.verdict))) {
    return { ok: false, error: `verdict: must be one of ${VERDICTS.join(", ")}` };
  }
  const answer: PeerAnswer = { node: node.data, controlPlane: json.controlPlane as ControlPlaneView };
  if (json.verdict !== undefined) answer.verdict = json.verdict as PeerVerdict;
  return { ok: true, value: answer };
}

/**
 * Maps the engine's lifecycle state of a node to a peer verdict. Only "healthy" vouches for a
 * node: "suspect" means the engine already misses it, so it must not keep a cut-off node alive;
 * "fencing", "remediating" and "down" (remediated, still silent) say it is being or was fenced.
 * Nested state values ("fencing.awaitingConfirmation") are judged by their top-level state.
 */
export function verdictOfState(state: string | undefined): PeerVerdict {
  const top = state?.split(".")[0];
  if (top === "healthy") return "healthy";
  if (top === "fencing" || top === "remediating" || top === "down") return "unhealthy";
  return "unknown";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
