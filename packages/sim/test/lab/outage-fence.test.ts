import { describe, expect, it } from "vitest";
import { FAULT_KINDS_BEFORE_NATS_LOSS, outageFenceGroup, runSeed } from "../../src/index.js";

const nodes = ["node-1", "node-2", "node-3", "node-4"];

describe("no-reboot-during-outage counts the peers that could answer the deciding round", () => {
  it("a peer that was down or still booting when the round asked is not counted, even if it is up when the round ends", () => {
    // Seed 2743 at 34.73 s: node-4 asked at 34.23 s; node-1 and node-3 (reset by their own
    // watchdogs) booted at 34.595 s; node-2 is partitioned off.
    const group = outageFenceGroup({
      node: "node-4",
      nodes,
      disturbed: new Set(["node-2"]),
      reachesNow: (x) => x !== "node-2",
      servingWhenAsked: [],
    });
    expect(group).toEqual(["node-4"]);
  });

  it("a peer that was serving when asked and is still reached counts: a majority of those is a violation", () => {
    const group = outageFenceGroup({
      node: "node-4",
      nodes,
      disturbed: new Set(["node-2"]),
      reachesNow: (x) => x !== "node-2",
      servingWhenAsked: ["node-1", "node-2", "node-3"],
    });
    expect(group).toEqual(["node-1", "node-3", "node-4"]);
  });

  it("a peer that answered but is gone when the round ends is not counted (as before)", () => {
    const group = outageFenceGroup({
      node: "node-1",
      nodes,
      disturbed: new Set(),
      reachesNow: (x) => x === "node-2",
      servingWhenAsked: ["node-2", "node-3", "node-4"],
    });
    expect(group).toEqual(["node-1", "node-2"]);
  });

  it("a fence that did not come from a peer round is judged on who is there now", () => {
    const group = outageFenceGroup({
      node: "node-1",
      nodes,
      disturbed: new Set(["node-4"]),
      reachesNow: () => true,
      servingWhenAsked: undefined,
    });
    expect(group).toEqual(["node-1", "node-2", "node-3"]);
  });
});

describe("a fleet fencing itself in waves during an outage (seeds that used to fail)", () => {
  // In each seed, during a control-plane outage, the node named fenced itself as a minority (or
  // isolated) because the peers it asked were down — reset by their own watchdogs after fencing
  // themselves as a minority earlier in the outage — and those peers booted again during its
  // deciding round. The invariant used to count them as if they could have answered.
  it.each([
    [1429, "node-1"],
    [1801, "node-6"],
    [2254, "node-3"],
    [2743, "node-4"],
  ])("seed %i: %s's self-fence is the quorum rule's, not a violation", async (seed, node) => {
    const r = await runSeed(seed, { keep: true, kinds: FAULT_KINDS_BEFORE_NATS_LOSS, growth: false });
    expect(r.failures).toEqual([]);
    const outages = r.faults.filter((f) => f.kind === "control-plane-outage");
    const fencedInOutage = r.trail!.filter(
      (l) => l.node === node && l.what.startsWith("[machine] fenced itself") && outages.some((o) => o.at <= l.at && l.at <= o.healAt),
    );
    expect(fencedInOutage.length).toBeGreaterThan(0);
    expect(r.convergedAtMs).not.toBeNull();
  });
});
