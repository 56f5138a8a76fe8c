import { describe, expect, it } from "vitest";
import { createMembershipView } from "@fenceline/contracts";
import { decideSelfFence, type PeerReport, type SelfFenceInput } from "../src/self-fence-decision.js";

const lost = (peer: string): PeerReport => ({ peer, controlPlane: "lost" });
const connected = (peer: string, verdict?: PeerReport["verdict"]): PeerReport => ({
  peer,
  controlPlane: "reachable",
  ...(verdict ? { verdict } : {}),
});

/** A view of `n` members a, b, c, …; this node is "a". */
const fleet = (n: number, witness = true) =>
  createMembershipView(
    1,
    witness,
    Array.from({ length: n }, (_, i) => ({ node: String.fromCharCode(97 + i) })),
  );

function decide(overrides: Partial<SelfFenceInput>) {
  return decideSelfFence({
    node: "a",
    view: fleet(5),
    controlPlaneLostForMs: 6_000,
    controlPlaneTimeoutMs: 5_000,
    peerAnswers: [],
    peersAsked: 4,
    ...overrides,
  });
}

describe("decideSelfFence: one test per row", () => {
  it("1. control plane not lost long enough → keep feeding, even with no peer answering", () => {
    const d = decide({ controlPlaneLostForMs: 4_999 });
    expect(d).toMatchObject({ action: "keep-feeding", reason: "control-plane-ok" });
  });

  it("2. a connected peer says unhealthy → stop", () => {
    const d = decide({ peerAnswers: [lost("b"), connected("c", "unhealthy")] });
    expect(d).toMatchObject({ action: "stop-feeding", reason: "marked-unhealthy" });
    expect(d.detail).toContain("c");
  });

  it("3. a connected peer says healthy → keep", () => {
    expect(decide({ peerAnswers: [connected("b", "healthy")] })).toMatchObject({ action: "keep-feeding", reason: "peer-says-healthy" });
  });

  it("4. no membership view learned yet → keep (the engine cannot fence it by time); verdicts still count", () => {
    expect(decide({ view: null, peerAnswers: [] })).toMatchObject({ action: "keep-feeding", reason: "no-membership" });
    expect(decide({ view: null, peerAnswers: [connected("b", "unhealthy")] }).reason).toBe("marked-unhealthy");
  });

  it("5. this node + members that lost the control plane are more than half the votes → outage → keep", () => {
    const d = decide({ peerAnswers: [lost("b"), lost("c")] });
    expect(d).toMatchObject({ action: "keep-feeding", reason: "control-plane-outage" });
    expect(d.detail).toBe("3 of 5 votes (this node + 2 peer(s)) lost the control plane: a majority of 5 member(s)");
  });

  it("6. no peer answers → isolated → stop", () => {
    const d = decide({ peerAnswers: [] });
    expect(d).toMatchObject({ action: "stop-feeding", reason: "isolated" });
    expect(d.detail).toContain("0 of 4");
  });

  it("7. a minority that lost the control plane → partitioned minority → stop", () => {
    expect(decide({ peerAnswers: [lost("b")] })).toMatchObject({ action: "stop-feeding", reason: "partitioned-minority" });
  });
});

describe("decideSelfFence: edge cases", () => {
  it("exactly at the timeout counts as lost", () => {
    expect(decide({ controlPlaneLostForMs: 5_000 }).reason).toBe("isolated");
  });

  it("unhealthy beats healthy when connected peers disagree", () => {
    expect(decide({ peerAnswers: [connected("b", "healthy"), connected("c", "unhealthy")] }).reason).toBe("marked-unhealthy");
  });

  it("verdicts from peers that lost the control plane are ignored", () => {
    const d = decide({ peerAnswers: [{ peer: "b", controlPlane: "lost", verdict: "healthy" }] });
    expect(d).toMatchObject({ action: "stop-feeding", reason: "partitioned-minority" });
    const e = decide({ peerAnswers: [{ peer: "b", controlPlane: "lost", verdict: "unhealthy" }, lost("c")] });
    expect(e.reason).toBe("control-plane-outage");
  });

  it("a connected peer without a verdict is not proof of health and does not join our group (PR #354)", () => {
    expect(decide({ peerAnswers: [connected("b", "unknown")] })).toMatchObject({ action: "stop-feeding", reason: "partitioned-minority" });
    expect(decide({ peerAnswers: [connected("b")] }).reason).toBe("partitioned-minority");
    // two lost peers still make a majority of 5 next to a silent connected one
    const d = decide({ peerAnswers: [lost("b"), lost("c"), connected("d", "unknown")] });
    expect(d.reason).toBe("control-plane-outage");
    expect(d.detail).toContain("without a verdict");
  });

  it("exactly half is not a majority without the witness: stop", () => {
    expect(decide({ view: fleet(4, false), peersAsked: 3, peerAnswers: [lost("b")] }).reason).toBe("partitioned-minority");
    expect(decide({ view: fleet(6, false), peersAsked: 5, peerAnswers: [lost("b"), lost("c")] }).reason).toBe("partitioned-minority");
    expect(decide({ view: fleet(6, false), peersAsked: 5, peerAnswers: [lost("b"), lost("c"), lost("d")] }).reason).toBe(
      "control-plane-outage",
    );
  });

  it("with the witness, half of an even fleet is a minority (the control plane's side wins), and more than half still an outage", () => {
    const half = decide({ view: fleet(4), peersAsked: 3, peerAnswers: [lost("b")] });
    expect(half.reason).toBe("partitioned-minority");
    expect(half.detail).toBe(
      "only 2 of 5 votes (this node + 1 peer(s)) lost the control plane: not a strict majority of 4 member(s) + the control plane's witness vote",
    );
    expect(decide({ view: fleet(4), peersAsked: 3, peerAnswers: [lost("b"), lost("c")] }).reason).toBe("control-plane-outage");
  });

  it("a fleet of 1 keeps feeding: nobody can remediate its only node", () => {
    expect(decide({ view: fleet(1), peersAsked: 0 })).toMatchObject({ action: "keep-feeding", reason: "control-plane-outage" });
  });

  it("a fleet of 2 with the witness: the peer lost it too → outage; the peer is silent → isolated", () => {
    expect(decide({ view: fleet(2), peersAsked: 1, peerAnswers: [lost("b")] }).reason).toBe("control-plane-outage");
    expect(decide({ view: fleet(2), peersAsked: 1, peerAnswers: [] })).toMatchObject({ action: "stop-feeding", reason: "isolated" });
    expect(decide({ view: fleet(2), peersAsked: 1, peerAnswers: [connected("b")] }).reason).toBe("partitioned-minority");
  });

  it("a peer answering twice is counted once", () => {
    expect(decide({ peerAnswers: [lost("b"), lost("b")] }).reason).toBe("partitioned-minority");
  });

  it("counts only members of the view: an answer from a node outside it, or this node not being a member, adds nothing", () => {
    expect(decide({ peerAnswers: [lost("b"), lost("x"), lost("y")] }).reason).toBe("partitioned-minority");
    // A node not yet a member (it just joined) counts only the members that lost the control plane.
    const newcomer = decide({ node: "z", peerAnswers: [lost("a"), lost("b")] });
    expect(newcomer.reason).toBe("partitioned-minority");
    expect(newcomer.detail).toContain("(this node is not a member) 2 peer(s)");
    expect(decide({ node: "z", peerAnswers: [lost("a"), lost("b"), lost("c")] }).reason).toBe("control-plane-outage");
  });

  it("the old `peers: []`: a view of itself alone says a majority even in a fleet of many (what the lab's lonely-agent breaks)", () => {
    expect(decide({ view: createMembershipView(1, true, [{ node: "a" }]), peersAsked: 0 }).reason).toBe("control-plane-outage");
  });
});

describe("decideSelfFence: the detail (the agent's fence record quotes it) names what the decision rests on", () => {
  it("the silence against the timeout", () => {
    expect(decide({ controlPlaneLostForMs: 4_000 }).detail).toBe("control plane silent for 4000ms, below the 5000ms timeout");
  });

  it("the peer that vouched", () => {
    expect(decide({ peerAnswers: [connected("b", "healthy")] }).detail).toBe(
      "peer b reaches the control plane and says this node is healthy",
    );
  });

  it("the group that lost the control plane, and connected peers without a verdict only when there are some", () => {
    expect(decide({ peerAnswers: [lost("b")] }).detail).toBe(
      "only 2 of 5 votes (this node + 1 peer(s)) lost the control plane: not a strict majority of 5 member(s)",
    );
    expect(decide({ peerAnswers: [lost("b"), connected("c")] }).detail).toBe(
      "only 2 of 5 votes (this node + 1 peer(s)) lost the control plane: not a strict majority of 5 member(s); 1 connected peer(s) without a verdict do not count",
    );
    expect(decide({ peerAnswers: [lost("b"), lost("c")] }).detail).toBe(
      "3 of 5 votes (this node + 2 peer(s)) lost the control plane: a majority of 5 member(s)",
    );
  });
});
