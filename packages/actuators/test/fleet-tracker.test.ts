import { createMembershipView } from "@fenceline/contracts";
import { describe, expect, it } from "vitest";
import { createFleetTracker } from "../src/fleet-tracker.js";

function setup(minDipMs = 0) {
  let t = 1_000;
  const tracker = createFleetTracker({ now: () => t, heartbeatTimeoutMs: 300, minDipMs });
  return {
    tracker,
    advance: (ms: number) => (t += ms),
    now: () => t,
    beat: (...nodes: string[]) => nodes.forEach((n) => tracker.onHeartbeat(n)),
  };
}
const view = (version: number, nodes: string[], witness = true) =>
  createMembershipView(
    version,
    witness,
    nodes.map((node) => ({ node })),
  );

describe("fleet tracker", () => {
  it("without a membership view: every recorded node but the forgotten, by record and heartbeat", () => {
    const { tracker, beat } = setup();
    for (const n of ["a", "b", "c"]) tracker.onSnapshot(n, "healthy", true);
    tracker.onSnapshot("k8s-only", "healthy", false);
    tracker.onSnapshot("gone", "forgotten", true);
    // Agents not heard yet are not healthy; a node without an agent is, on its record.
    expect(tracker.view()).toMatchObject({ fleetSize: 4, healthy: 1, majoritySince: null });
    beat("a", "b");
    expect(tracker.view()).toMatchObject({ fleetSize: 4, healthy: 3, majoritySince: 1_000 });
    expect(tracker.view().views).toBeUndefined();
  });

  it("tracks the majority of each view kept, with the witness on the engine's side", () => {
    const { tracker, beat, advance } = setup();
    for (const n of ["a", "b", "c", "d"]) tracker.onSnapshot(n, "healthy", true);
    tracker.onMembership(view(1, ["a", "b"]));
    tracker.onMembership(view(2, ["a", "b", "c", "d"]));
    beat("a");
    let v = tracker.view();
    expect(v.views!.map((x) => [x.version, x.healthy, x.votes, x.majority])).toEqual([
      [1, 1, 3, true],
      [2, 1, 5, false],
    ]);
    expect(v).toMatchObject({ fleetSize: 4, healthy: 1, witness: 1, majoritySince: null });
    advance(100);
    beat("a", "b");
    v = tracker.view();
    expect(v.views!.map((x) => [x.version, x.majority, x.majoritySince])).toEqual([
      [1, true, 1_000],
      [2, true, 1_100],
    ]);
    // Silence: heartbeats older than the timeout no longer count.
    advance(301);
    expect(tracker.view().views!.every((x) => !x.majority && x.majoritySince === null)).toBe(true);
  });

  it("ignores a dip in the majority shorter than minDipMs for majoritySince", () => {
    const { tracker, beat, advance } = setup(500);
    for (const n of ["a", "b", "c"]) tracker.onSnapshot(n, "healthy", true);
    tracker.onMembership(view(1, ["a", "b", "c"]));
    beat("a", "b", "c");
    expect(tracker.view().majoritySince).toBe(1_000);
    advance(301);
    expect(tracker.view().views![0]!.majority).toBe(false);
    expect(tracker.view().majoritySince).toBe(1_000);
    beat("a", "b");
    expect(tracker.view().majoritySince).toBe(1_000);
    advance(301);
    tracker.view();
    advance(600);
    expect(tracker.view().majoritySince).toBeNull();
  });

  it("keeps the last 64 views", () => {
    const { tracker } = setup();
    for (let v = 1; v <= 70; v++) tracker.onMembership(view(v, ["a"]));
    const versions = tracker.view().views!.map((x) => x.version);
    expect(versions[0]).toBe(7);
    expect(versions).toHaveLength(64);
  });
});
