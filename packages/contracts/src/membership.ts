import { z } from "zod";
import { NodeName } from "./names.js";

/** One member of the fleet, as agents learn it: its name and where its agent answers its peers. */
export const Member = z
  .object({
    node: NodeName,
    /** The URL the node's agent advertised for the peer port; absent for a node without an agent. */
    peerUrl: z.string().min(1).max(512).optional(),
  })
  .strict();
export type Member = z.infer<typeof Member>;

/**
 * The fleet's membership view (KV bucket FL_MEMBERS, key "view"): written by the control
 * plane's membership keeper with compare-and-set, one version at a time; served to the agents
 * in heartbeat acks; kept by every agent on disk. Both the fleet guard's majority check and an
 * agent's self-fencing decision count against a view (docs/agent.md, "Why the engine and a
 * cut-off agent can never both act").
 */
export const MembershipView = z
  .object({
    v: z.literal(1),
    /** Grows by one with every change. 0 is never written: it means "no view". */
    version: z.number().int().positive(),
    /** The control plane is one more vote in a fleet of even size (policy `fleet.witness`). */
    witness: z.boolean(),
    /** Sorted by node name, no duplicates. */
    members: z.array(Member).max(100_000),
  })
  .strict()
  .superRefine((view, ctx) => {
    for (let i = 1; i < view.members.length; i++) {
      if (view.members[i - 1]!.node >= view.members[i]!.node) {
        ctx.addIssue({ code: "custom", path: ["members", i, "node"], message: "members must be sorted by node name, without duplicates" });
        return;
      }
    }
  });
export type MembershipView = z.infer<typeof MembershipView>;

/** 1 when the control plane's witness vote applies to this view (witness on, even size), else 0. */
export function witnessVote(view: Pick<MembershipView, "witness" | "members">): 0 | 1 {
  return view.witness && view.members.length % 2 === 0 ? 1 : 0;
}

/** Members plus the witness vote: what a strict majority is counted against. */
export function votesOf(view: Pick<MembershipView, "witness" | "members">): number {
  return view.members.length + witnessVote(view);
}

/**
 * The engine's side: `healthy` members (recorded healthy and heard now) plus the witness vote
 * are a strict majority of the view's votes. The witness is the control plane's own vote, so it
 * always goes to the engine's side.
 */
export function engineHasMajority(view: Pick<MembershipView, "witness" | "members">, healthy: number): boolean {
  return 2 * (healthy + witnessVote(view)) > votesOf(view);
}

/**
 * An agent's side: a group of `group` members that all lost the control plane (the agent
 * itself included, if a member) is a strict majority of the view's votes. Never with the witness.
 */
export function groupHasMajority(view: Pick<MembershipView, "witness" | "members">, group: number): boolean {
  return 2 * group > votesOf(view);
}

/** Builds a view from members in any order (sorted, later duplicates dropped). */
export function createMembershipView(version: number, witness: boolean, members: Iterable<Member>): MembershipView {
  const byNode = new Map<string, Member>();
  for (const m of members)
    if (!byNode.has(m.node)) byNode.set(m.node, m.peerUrl === undefined ? { node: m.node } : { node: m.node, peerUrl: m.peerUrl });
  const sorted = [...byNode.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  return { v: 1, version, witness, members: sorted };
}

/** Same members, addresses and witness (the version is not compared). */
export function sameMembership(a: Pick<MembershipView, "witness" | "members">, b: Pick<MembershipView, "witness" | "members">): boolean {
  if (a.witness !== b.witness || a.members.length !== b.members.length) return false;
  return a.members.every((m, i) => m.node === b.members[i]!.node && m.peerUrl === b.members[i]!.peerUrl);
}
