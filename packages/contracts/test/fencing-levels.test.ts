import { describe, expect, it } from "vitest";
import { DEFAULT_POLICY, DEMO_POLICY, Policy, fencingLevelsOf } from "../src/index.js";

describe("fencing levels (policy)", () => {
  it("without levels, the two switches name them: [watchdog] by default, [power] then [watchdog] with a fence agent", () => {
    expect(DEFAULT_POLICY.fencing).toMatchObject({
      levels: [{ methods: ["watchdog"], timeoutMs: 600_000 }],
      watchdog: true,
      fenceAgent: false,
      unfence: "after-remediation",
    });
    expect(Policy.parse({ fencing: { fenceAgent: true } }).fencing.levels).toEqual([
      { methods: ["power"], timeoutMs: 60_000 },
      { methods: ["watchdog"], timeoutMs: 600_000 },
    ]);
    expect(Policy.parse({ fleet: { minHealthy: "50%" }, fencing: { watchdog: false, fenceAgent: true } }).fencing).toMatchObject({
      levels: [{ methods: ["power"], timeoutMs: 60_000 }],
      watchdog: false,
      fenceAgent: true,
    });
  });

  it("takes levels as method lists or with their own timeout, and derives the switches from them", () => {
    const p = Policy.parse({ fencing: { levels: [["ipmi"], { methods: ["pdu-a", "pdu-b"], timeoutMs: "20s" }, ["watchdog"]] } });
    expect(p.fencing.levels).toEqual([
      { methods: ["ipmi"], timeoutMs: 60_000 },
      { methods: ["pdu-a", "pdu-b"], timeoutMs: 20_000 },
      { methods: ["watchdog"], timeoutMs: 600_000 },
    ]);
    expect(p.fencing).toMatchObject({ watchdog: true, fenceAgent: true });
    // A parsed policy parses again to itself (policy files written from a parsed policy).
    expect(Policy.parse(JSON.parse(JSON.stringify(p)))).toEqual(p);
    expect(Policy.parse(JSON.parse(JSON.stringify(DEMO_POLICY)))).toEqual(DEMO_POLICY);
  });

  it("picks a node's own levels, else its host group's, else the policy's", () => {
    const p = Policy.parse({
      fencing: { levels: [["ipmi"], ["watchdog"]], hostGroups: { db: [["pdu-a", "pdu-b"]] }, nodes: { "edge-1": [["watchdog"]] } },
    });
    expect(fencingLevelsOf(p, "edge-1", "db").map((l) => l.methods)).toEqual([["watchdog"]]);
    expect(fencingLevelsOf(p, "db-1", "db").map((l) => l.methods)).toEqual([["pdu-a", "pdu-b"]]);
    expect(fencingLevelsOf(p, "w-1", "workers").map((l) => l.methods)).toEqual([["ipmi"], ["watchdog"]]);
    expect(fencingLevelsOf(p, "w-1", null).map((l) => l.methods)).toEqual([["ipmi"], ["watchdog"]]);
  });

  it("refuses a switch that contradicts the levels, more than 9 levels, and power mixed with device names", () => {
    const contradiction = Policy.safeParse({ fencing: { levels: [["watchdog"]], fenceAgent: true } });
    expect(contradiction.success).toBe(false);
    expect(contradiction.error?.issues[0]?.message).toContain(
      "fencing.fenceAgent: true contradicts fencing.levels (no level uses a power device)",
    );
    expect(Policy.safeParse({ fencing: { levels: Array.from({ length: 10 }, () => ["ipmi"]) } }).success).toBe(false);
    const mixed = Policy.safeParse({ fencing: { levels: [["power", "pdu-a"]] } });
    expect(mixed.success).toBe(false);
    expect(JSON.stringify(mixed.error?.issues)).toContain("already means every fence device of the node");
    expect(Policy.safeParse({ fencing: { levels: [["IPMI"]] } }).success).toBe(false);
    expect(Policy.safeParse({ fencing: { levels: [[]] } }).success).toBe(false);
  });

  it("a power-only topology needs no healthy majority; one with a watchdog level still does", () => {
    expect(Policy.safeParse({ fleet: { minHealthy: "50%" }, fencing: { levels: [["ipmi"]] } }).success).toBe(true);
    expect(Policy.safeParse({ fleet: { minHealthy: "50%" }, fencing: { levels: [["ipmi"], ["watchdog"]] } }).success).toBe(false);
    expect(
      Policy.safeParse({ fleet: { minHealthy: "50%" }, fencing: { levels: [["ipmi"]], nodes: { "n-1": [["watchdog"]] } } }).success,
    ).toBe(false);
  });
});
