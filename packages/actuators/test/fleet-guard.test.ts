import { Policy, type PolicyInput } from "@fenceline/contracts";
import { describe, expect, it } from "vitest";
import { EMPTY_BUDGET, decideSlot, releaseSlot, remediationSlotsAllowed, type FleetBudget, type FleetView } from "../src/fleet-guard.js";

const view = (fleetSize: number, healthy: number) => ({ fleetSize, healthy, majoritySince: 0 }) as FleetView;
/** When the requests below are made: long after every view's majority began (see "after the fleet was out of sight"). */
const AT = 60_000;
const budgetOf = (...held: Array<string | [string, "cp"]>): FleetBudget => ({
  v: 1,
  slots: Object.fromEntries(
    held.map((h) => (Array.isArray(h) ? [h[0], { since: 1, controlPlane: true }] : [h, { since: 1, controlPlane: false }])),
  ),
});
/** Fence-agent fencing only: the healthy-majority rule is off, so minHealthy may be 50% or less. */
const noWatchdog = { fencing: { watchdog: false, fenceAgent: true } } as const;

type Case = {
  name: string;
  policy: PolicyInput;
  fleet: [size: number, healthy: number];
  held?: Array<string | [string, "cp"]>;
  request?: { node: string; controlPlane: boolean };
  granted: boolean;
  reason: string | RegExp;
};

const cases: Case[] = [
  // The healthy majority (watchdog fencing on, the default).
  {
    name: "12 nodes, 6 healthy: no majority",
    policy: {},
    fleet: [12, 6],
    granted: false,
    reason: "no healthy majority: 6 of 12 nodes healthy (the engine may be on the minority side of a partition)",
  },
  {
    name: "12 nodes, 7 healthy: majority",
    policy: {},
    fleet: [12, 7],
    granted: true,
    reason: "granted: 7 of 12 healthy, 1 in remediation",
  },
  { name: "3 nodes, 1 healthy: no majority", policy: {}, fleet: [3, 1], granted: false, reason: /no healthy majority: 1 of 3/ },
  { name: "3 nodes, 2 healthy: majority", policy: {}, fleet: [3, 2], granted: true, reason: /granted: 2 of 3/ },
  { name: "no nodes known: no majority", policy: {}, fleet: [0, 0], granted: false, reason: /no healthy majority: 0 of 0/ },
  {
    name: "without watchdog fencing the majority rule is off",
    policy: { ...noWatchdog, fleet: { minHealthy: "40%" } },
    fleet: [12, 6],
    granted: true,
    reason: /granted: 6 of 12/,
  },

  // minHealthy: percentages round up.
  {
    name: "minHealthy 75% of 10 is 8: 7 healthy refused",
    policy: { fleet: { minHealthy: "75%" } },
    fleet: [10, 7],
    granted: false,
    reason: "7 of 10 nodes healthy, minHealthy 75% requires 8",
  },
  {
    name: "minHealthy 75% of 10 is 8: 8 healthy granted",
    policy: { fleet: { minHealthy: "75%" } },
    fleet: [10, 8],
    granted: true,
    reason: /granted/,
  },
  {
    name: "default minHealthy 51% of 7 is 4: 4 healthy granted",
    policy: { ...noWatchdog },
    fleet: [7, 4],
    granted: true,
    reason: /granted/,
  },
  {
    name: "default minHealthy 51% of 7 is 4: 3 healthy refused",
    policy: { ...noWatchdog },
    fleet: [7, 3],
    granted: false,
    reason: "3 of 7 nodes healthy, minHealthy 51% requires 4",
  },
  {
    name: "minHealthy 34% of 10 is 4 (3.4 up)",
    policy: { ...noWatchdog, fleet: { minHealthy: "34%" } },
    fleet: [10, 3],
    granted: false,
    reason: /minHealthy 34% requires 4/,
  },
  {
    name: "minHealthy as a count",
    policy: { ...noWatchdog, fleet: { minHealthy: 3 } },
    fleet: [10, 2],
    granted: false,
    reason: "2 of 10 nodes healthy, minHealthy 3 requires 3",
  },
  {
    name: "minHealthy as a count string",
    policy: { ...noWatchdog, fleet: { minHealthy: "3" } },
    fleet: [10, 3],
    granted: true,
    reason: /granted/,
  },

  // maxUnhealthy: counts held slots; percentages round down.
  {
    name: "maxUnhealthy 2 with 1 held: granted",
    policy: { fleet: { maxUnhealthy: 2 } },
    fleet: [10, 8],
    held: ["a"],
    granted: true,
    reason: "granted: 8 of 10 healthy, 2 in remediation",
  },
  {
    name: "maxUnhealthy 2 with 2 held: refused",
    policy: { fleet: { maxUnhealthy: 2 } },
    fleet: [10, 8],
    held: ["b", "a"],
    granted: false,
    reason: "2 nodes already in remediation (a, b), maxUnhealthy 2 allows 2",
  },
  {
    name: "maxUnhealthy 25% of 10 is 2 (2.5 down): 1 held granted",
    policy: { fleet: { maxUnhealthy: "25%" } },
    fleet: [10, 9],
    held: ["a"],
    granted: true,
    reason: /granted/,
  },
  {
    name: "maxUnhealthy 25% of 10 is 2 (2.5 down): 2 held refused",
    policy: { fleet: { maxUnhealthy: "25%" } },
    fleet: [10, 9],
    held: ["a", "b"],
    granted: false,
    reason: /maxUnhealthy 25% allows 2/,
  },
  {
    name: "maxUnhealthy 10% of 9 is 0: refused with nothing held",
    policy: { fleet: { maxUnhealthy: "10%" } },
    fleet: [9, 9],
    granted: false,
    reason: /0 nodes already in remediation.*maxUnhealthy 10% allows 0/,
  },
  {
    name: "maxUnhealthy 0: never",
    policy: { fleet: { maxUnhealthy: 0 } },
    fleet: [10, 10],
    granted: false,
    reason: /maxUnhealthy 0 allows 0/,
  },
  {
    name: "no maxUnhealthy: no count limit",
    policy: {},
    fleet: [20, 15],
    held: ["a", "b", "c", "d"],
    granted: true,
    reason: /5 in remediation/,
  },

  // Control-plane nodes: at most maxControlPlane at a time.
  {
    name: "second control-plane node refused",
    policy: {},
    fleet: [10, 8],
    held: [["cp1", "cp"], "w1"],
    request: { node: "cp2", controlPlane: true },
    granted: false,
    reason: "control-plane node cp1 already in remediation; at most 1 at a time",
  },
  {
    name: "a worker is not limited by a control-plane slot",
    policy: {},
    fleet: [10, 8],
    held: [["cp1", "cp"]],
    request: { node: "w2", controlPlane: false },
    granted: true,
    reason: /granted/,
  },
  {
    name: "first control-plane node granted",
    policy: {},
    fleet: [10, 8],
    held: ["w1"],
    request: { node: "cp1", controlPlane: true },
    granted: true,
    reason: /granted/,
  },
  {
    name: "maxControlPlane 2 allows a second",
    policy: { fleet: { maxControlPlane: 2 } },
    fleet: [10, 8],
    held: [["cp1", "cp"]],
    request: { node: "cp2", controlPlane: true },
    granted: true,
    reason: /granted/,
  },
  {
    name: "maxControlPlane 2 with two held names both",
    policy: { fleet: { maxControlPlane: 2 } },
    fleet: [10, 8],
    held: [
      ["cp1", "cp"],
      ["cp2", "cp"],
    ],
    request: { node: "cp3", controlPlane: true },
    granted: false,
    reason: "control-plane node cp1, cp2 already in remediation; at most 2 at a time",
  },
  {
    name: "maxControlPlane 0 refuses every control-plane node",
    policy: { fleet: { maxControlPlane: 0 } },
    fleet: [10, 9],
    request: { node: "cp1", controlPlane: true },
    granted: false,
    reason: /at most 0 at a time/,
  },

  // Rules apply in order: the majority first.
  {
    name: "no majority is reported before maxUnhealthy",
    policy: { fleet: { maxUnhealthy: 1 } },
    fleet: [4, 2],
    held: ["a"],
    granted: false,
    reason: /no healthy majority/,
  },
];

describe("decideSlot", () => {
  it.each(cases)("$name", ({ policy, fleet, held, request, granted, reason }) => {
    const budget = budgetOf(...(held ?? []));
    const before = structuredClone(budget);
    const req = { node: "n1", controlPlane: false, ...request, at: AT };
    const decision = decideSlot(budget, view(...fleet), req, Policy.parse(policy));
    expect(decision.granted).toBe(granted);
    if (typeof reason === "string") expect(decision.reason).toBe(reason);
    else expect(decision.reason).toMatch(reason);
    // Pure: the input budget is never changed.
    expect(budget).toEqual(before);
    if (granted) {
      expect(decision.budget.slots[req.node]).toEqual({ since: AT, controlPlane: req.controlPlane });
      expect(Object.keys(decision.budget.slots)).toHaveLength(Object.keys(budget.slots).length + 1);
    } else {
      expect(decision.budget).toBe(budget);
    }
  });

  it("grants again, unchanged, to a node that already holds a slot, whatever the fleet looks like now; says whether the majority holds", () => {
    const budget = budgetOf("n1", "n2");
    const decision = decideSlot(
      budget,
      view(10, 0),
      { node: "n1", controlPlane: false, at: AT },
      Policy.parse({ fleet: { maxUnhealthy: 1 } }),
    );
    expect(decision).toEqual({
      granted: true,
      reason: "already holds a slot; no healthy majority: 0 of 10 nodes healthy (the engine may be on the minority side of a partition)",
      budget,
    });
    expect(decision.budget).toBe(budget);
    expect(decideSlot(budget, view(10, 9), { node: "n1", controlPlane: false, at: AT }, Policy.parse({}))).toEqual({
      granted: true,
      reason: "already holds a slot",
      budget,
      majoritySince: 0,
    });
  });

  it("after the fleet was out of sight, refuses until the majority has held for unhealthyDurationMs: a node still silent may be reconnecting", () => {
    const policy = Policy.parse({ unhealthyDurationMs: 5_000 });
    const back = { fleetSize: 12, healthy: 9, majoritySince: 100_000 } as FleetView;
    const ask = (at: number) => decideSlot(EMPTY_BUDGET, back, { node: "n1", controlPlane: false, at }, policy);
    expect(ask(101_500)).toEqual({
      granted: false,
      reason:
        "a healthy majority only for 1.5s: a node silent since before may still be reconnecting (unhealthyDurationMs 5s counts from the majority's return)",
      budget: EMPTY_BUDGET,
    });
    expect(ask(104_999).granted).toBe(false);
    expect(ask(105_000)).toMatchObject({ granted: true, majoritySince: 100_000 });
    // A node that already holds its slot keeps it.
    const held = decideSlot(budgetOf("n1"), back, { node: "n1", controlPlane: false, at: 101_500 }, policy);
    expect(held).toMatchObject({ granted: true, reason: "already holds a slot" });
  });

  it("releases a slot, and releasing one not held changes nothing", () => {
    const budget = budgetOf("n1", ["cp1", "cp"]);
    const released = releaseSlot(budget, "cp1");
    expect(released).toEqual(budgetOf("n1"));
    expect(budget.slots.cp1).toBeDefined();
    expect(releaseSlot(released, "cp1")).toBe(released);
    expect(releaseSlot(EMPTY_BUDGET, "n1")).toBe(EMPTY_BUDGET);
    // The freed slot can be granted to another node.
    const policy = Policy.parse({ fleet: { maxUnhealthy: 1 } });
    expect(decideSlot(budgetOf("n1"), view(10, 9), { node: "n2", controlPlane: false, at: AT }, policy).granted).toBe(false);
    expect(decideSlot(releaseSlot(budgetOf("n1"), "n1"), view(10, 9), { node: "n2", controlPlane: false, at: AT }, policy).granted).toBe(
      true,
    );
  });
});

/** A fleet view with membership views: [version, members, healthy, majoritySince] each, witness on. */
function withViews(...specs: Array<[version: number, members: number, healthy: number, since: number | null]>): FleetView {
  const views = specs.map(([version, members, healthy, since]) => {
    const witness = (members % 2 === 0 ? 1 : 0) as 0 | 1;
    const votes = members + witness;
    const majority = 2 * (healthy + witness) > votes;
    return { version, members, witness, votes, healthy, majority, majoritySince: majority ? since : null };
  });
  const current = views.at(-1)!;
  return { fleetSize: current.members, healthy: current.healthy, majoritySince: current.majoritySince, witness: current.witness, views };
}

describe("decideSlot with membership views", () => {
  const policy = Policy.parse({});
  const ask = (fleet: FleetView, membershipVersion?: number, node = "n1") =>
    decideSlot(
      EMPTY_BUDGET,
      fleet,
      { node, controlPlane: false, at: AT, ...(membershipVersion !== undefined ? { membershipVersion } : {}) },
      policy,
    );

  it("a fleet of two: one healthy node and the control plane's witness vote are a majority of three", () => {
    const d = ask(withViews([1, 2, 1, 100]), 1);
    expect(d).toMatchObject({ granted: true, reason: "granted: 1 of 2 healthy + the witness, 1 in remediation", majoritySince: 100 });
  });

  it("an even split: the control plane's half may remediate the other", () => {
    expect(ask(withViews([3, 4, 2, 100]), 3).granted).toBe(true);
    expect(ask(withViews([3, 4, 1, 100]), 3)).toMatchObject({
      granted: false,
      reason:
        "no healthy majority: 1 of 4 nodes healthy + the control plane's witness vote, 2 of 5 votes (the engine may be on the minority side of a partition)",
    });
  });

  it("checks every view the node may hold, from the one it reported to the newest (the fleet grew from 5 to 7 while it was cut off)", () => {
    // 4 of 7 healthy is a majority of the new view; counted in the old one, only 2 of its 5 are.
    const grown = withViews([4, 5, 2, 100], [5, 7, 4, 200]);
    expect(ask(grown, 5)).toMatchObject({ granted: true, majoritySince: 200 });
    const stale = ask(grown, 4);
    expect(stale.granted).toBe(false);
    expect(stale.reason).toBe(
      "no healthy majority in membership view v4 (the node may still hold any of v4–v5): 2 of 5 nodes healthy, 2 of 5 votes (the engine may be on the minority side of a partition)",
    );
    // No version reported (no agent): the current view only.
    expect(ask(grown).granted).toBe(true);
  });

  it("the majority has held since the latest of its start in the views checked", () => {
    expect(ask(withViews([4, 5, 4, 300], [5, 7, 6, 200]), 4)).toMatchObject({ granted: true, majoritySince: 300 });
  });

  it("refuses a node whose view is newer than the guard has seen, or older than it keeps", () => {
    expect(ask(withViews([4, 5, 5, 1], [5, 5, 5, 1]), 6).reason).toBe(
      "the node reported membership view v6, newer than the v5 this guard has seen: asking again",
    );
    expect(ask(withViews([4, 5, 5, 1], [5, 5, 5, 1]), 2).reason).toBe(
      "the node's membership view v2 is older than the oldest the guard keeps (v4): its majority cannot be checked",
    );
  });

  it("counts the witness in minHealthy: 51% of 2 + 1 votes is 2", () => {
    expect(ask(withViews([1, 2, 1, 1]), 1).granted).toBe(true);
    const strict = decideSlot(
      EMPTY_BUDGET,
      withViews([1, 2, 1, 1]),
      { node: "n1", controlPlane: false, at: AT },
      Policy.parse({ fleet: { minHealthy: "100%" } }),
    );
    expect(strict.reason).toBe("1 of 2 nodes healthy (+ the control plane's witness vote, of 3), minHealthy 100% requires 3");
  });
});

describe("remediationSlotsAllowed", () => {
  it.each([
    // What minHealthy (rounded up) leaves; never below 0.
    { policy: {}, fleetSize: 10, allowed: 4 },
    { policy: { fleet: { minHealthy: "75%" } }, fleetSize: 10, allowed: 2 },
    { policy: { ...noWatchdog, fleet: { minHealthy: 3 } }, fleetSize: 2, allowed: 0 },
    { policy: {}, fleetSize: 0, allowed: 0 },
    // maxUnhealthy (rounded down) when it is smaller, what minHealthy leaves when that is.
    { policy: { fleet: { maxUnhealthy: 1 } }, fleetSize: 10, allowed: 1 },
    { policy: { fleet: { maxUnhealthy: "25%" } }, fleetSize: 10, allowed: 2 },
    { policy: { fleet: { maxUnhealthy: 8 } }, fleetSize: 10, allowed: 4 },
  ])("$fleetSize nodes, $policy.fleet: $allowed", ({ policy, fleetSize, allowed }) => {
    expect(remediationSlotsAllowed(Policy.parse(policy), fleetSize)).toBe(allowed);
  });

  it("is what decideSlot grants one node after another in a healthy fleet", () => {
    const policy = Policy.parse({ fleet: { minHealthy: "60%", maxUnhealthy: 3 } });
    let budget = EMPTY_BUDGET;
    let granted = 0;
    for (const node of ["a", "b", "c", "d", "e"]) {
      const decision = decideSlot(budget, view(10, 10 - granted), { node, controlPlane: false, at: AT }, policy);
      if (!decision.granted) break;
      budget = decision.budget;
      granted += 1;
    }
    expect(granted).toBe(remediationSlotsAllowed(policy, 10));
  });
});
