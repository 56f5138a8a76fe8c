import { describe, expect, it } from "vitest";
import { DEFAULT_POLICY, DEMO_POLICY } from "@fenceline/contracts";
import { NODE_STATES, exportMachine } from "@fenceline/statecharts";

describe("exportMachine", () => {
  const exported = exportMachine(DEMO_POLICY);
  const paths = new Set(exported.states.map((s) => s.path));

  it("lists every top-level state", () => {
    const topLevel = exported.states.filter((s) => s.parent === null).map((s) => s.path);
    expect(topLevel).toEqual(expect.arrayContaining([...NODE_STATES]));
    expect(topLevel).toEqual([
      "healthy",
      "suspect",
      "recovered",
      "fencing",
      "remediating",
      "paused",
      "down",
      "forgotten",
      "operator",
      "rejoining",
    ]);
  });

  it("describes nesting and initial states", () => {
    expect(exported.states.find((s) => s.path === "suspect")).toMatchObject({
      id: "node.suspect",
      parent: null,
      initial: "suspect.waiting",
    });
    expect(exported.states.find((s) => s.path === "remediating.running")).toMatchObject({ parent: "remediating", initial: null });
    expect(exported.states.find((s) => s.path === "rejoining")?.initial).toBe("rejoining.deciding");
  });

  it("marks as transient exactly the states left at once by an unguarded eventless transition", () => {
    const transient = exported.states.filter((s) => s.transient).map((s) => s.path);
    expect(transient).toEqual([
      "recovered",
      "remediating.selecting",
      "remediating.escalating",
      "remediating.done",
      "rejoining.deciding",
      "rejoining.settled",
      "rejoining.retryingReprovision",
    ]);
    // An eventless transition alone does not make a state transient: these also wait for events.
    for (const path of ["suspect.requestingSlot", "fencing"]) {
      expect(exported.transitions.some((t) => t.source === path && t.event === "(always)")).toBe(true);
      expect(exported.states.find((s) => s.path === path)?.transient).toBe(false);
    }
  });

  it("gives every transition an event name, a known source and known targets", () => {
    for (const t of exported.transitions) {
      expect(t.event).toMatch(/^([a-z]+\.[a-z-]+|\(always\))$/);
      expect(t.source === "node" || paths.has(t.source), t.source).toBe(true);
      for (const target of t.targets) expect(paths.has(target), target).toBe(true);
    }
  });

  it("names every guard and action", () => {
    const guards = exported.transitions.map((t) => t.guard).filter((g) => g !== null);
    expect(guards.length).toBeGreaterThan(30);
    for (const guard of guards) expect(guard).toMatch(/^[a-zA-Z]+(\(.+\))?$/);
    for (const action of exported.transitions.flatMap((t) => t.actions)) expect(action).not.toBe("inline");
    expect(guards).toContain("timerIs(safe-time)");
  });

  it("is stable and serialisable", () => {
    const json = JSON.stringify(exportMachine(DEMO_POLICY));
    expect(JSON.stringify(exportMachine(DEMO_POLICY))).toBe(json);
    const parsed = JSON.parse(json) as typeof exported;
    expect(parsed.states).toEqual(exported.states);
    expect(parsed.transitions).toEqual(exported.transitions);
    expect(parsed).toMatchObject({ id: "node", policyVersion: "demo-1" });
  });

  it("shows the policy in the transitions it shapes", () => {
    const fenceTimeout = (policy: typeof DEMO_POLICY) =>
      exportMachine(policy).transitions.find((t) => t.guard === "timerIs(fence-timeout)")?.actions;
    expect(fenceTimeout(DEFAULT_POLICY)).toEqual(["noteOperatorReason(no fencing confirmation within 10m)"]);
    expect(exportMachine(DEFAULT_POLICY).policyVersion).toBe("1");
  });
});
