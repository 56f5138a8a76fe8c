import { ErrorCode, FencelineError, Policy } from "@fenceline/contracts";
import { describe, expect, it } from "vitest";
import { VirtualClock } from "@fenceline/testing";
import { createActuator } from "../src/actuator.js";
import type { FleetBudget, FleetView } from "../src/fleet-guard.js";
import { createGuardHandlers, createMemoryBudgetStore, type BudgetStore } from "../src/guard-handlers.js";
import { command, resultOf } from "./helpers.js";

const fleet = (fleetSize: number, healthy: number) => () => ({ fleetSize, healthy, majoritySince: 0 }) as FleetView;

function guard(store: BudgetStore, options: { maxUnhealthy?: number; view?: () => FleetView } = {}) {
  const clock = new VirtualClock(5_000);
  const policy = Policy.parse({ fleet: options.maxUnhealthy === undefined ? {} : { maxUnhealthy: options.maxUnhealthy } });
  const handlers = createGuardHandlers({ store, view: options.view ?? fleet(10, 10), policy, clock });
  return createActuator({ name: "guard", handlers, clock });
}

const acquire = (node: string, controlPlane = false) => command("slot.acquire", { controlPlane }, { node, now: 5_000 });
const release = (node: string) => command("slot.release", {}, { node, now: 5_000 });

describe("guard handlers", () => {
  it("reports the majoritySince of the very view it decided on, even when the fleet changes before it answers", async () => {
    const store = createMemoryBudgetStore();
    const views: FleetView[] = [
      // (The majority began unhealthyDurationMs, 5 s, before the request, or the guard waits.)
      { fleetSize: 6, healthy: 4, majoritySince: 0 },
      // The same instant, a moment later: another node's snapshot turned it suspect.
      { fleetSize: 6, healthy: 3, majoritySince: null },
    ];
    let calls = 0;
    const g = guard(store, { view: () => views[Math.min(calls++, 1)]! });
    const granted = resultOf(await g.execute(acquire("n1")));
    expect(granted.data).toMatchObject({ ok: true, reason: "granted: 4 of 6 healthy, 1 in remediation", facts: { majoritySince: 0 } });
    expect(calls).toBe(1);
  });

  it("grants a slot, records it in the store, and releases it", async () => {
    const store = createMemoryBudgetStore();
    const g = guard(store, { maxUnhealthy: 1 });
    const granted = resultOf(await g.execute(acquire("n1")));
    expect(granted.data).toMatchObject({ ok: true, reason: "granted: 10 of 10 healthy, 1 in remediation" });
    expect(store.current().slots).toEqual({ n1: { since: 5_000, controlPlane: false } });

    const refused = resultOf(await g.execute(acquire("n2")));
    expect(refused.data.ok).toBe(false);
    expect(refused.data.reason).toBe("1 nodes already in remediation (n1), maxUnhealthy 1 allows 1");

    // Asking again while holding it: granted, nothing written.
    const before = await store.read();
    expect(resultOf(await g.execute(acquire("n1"))).data).toMatchObject({ ok: true, reason: "already holds a slot" });
    expect((await store.read()).revision).toBe(before.revision);

    expect(resultOf(await g.execute(release("n1"))).data.ok).toBe(true);
    expect(store.current().slots).toEqual({});
    expect(resultOf(await g.execute(acquire("n2"))).data.ok).toBe(true);
    // Releasing a slot not held succeeds and writes nothing.
    const rev = (await store.read()).revision;
    expect(resultOf(await g.execute(release("n9"))).data.ok).toBe(true);
    expect((await store.read()).revision).toBe(rev);
  });

  it("retries after a compare-and-set conflict, deciding again on the new budget", async () => {
    const inner = createMemoryBudgetStore();
    let conflicts = 0;
    const store: BudgetStore = {
      read: () => inner.read(),
      async write(budget, revision) {
        if (conflicts === 0) {
          conflicts++;
          // Another engine instance takes a slot between our read and our write.
          const theirs = await inner.read();
          await inner.write({ v: 1, slots: { ...theirs.budget.slots, other: { since: 1, controlPlane: false } } }, theirs.revision);
        }
        return inner.write(budget, revision);
      },
    };
    const g = guard(store, { maxUnhealthy: 2 });
    const result = resultOf(await g.execute(acquire("n1")));
    expect(conflicts).toBe(1);
    expect(result.data).toMatchObject({ ok: true, reason: "granted: 10 of 10 healthy, 2 in remediation" });
    expect(Object.keys(inner.current().slots).sort()).toEqual(["n1", "other"]);

    // The same conflict with room for one only: the retry sees the other slot and refuses.
    const inner2 = createMemoryBudgetStore();
    let raced = false;
    const store2: BudgetStore = {
      read: () => inner2.read(),
      async write(budget, revision) {
        if (!raced) {
          raced = true;
          await inner2.write({ v: 1, slots: { other: { since: 1, controlPlane: false } } }, 0);
        }
        return inner2.write(budget, revision);
      },
    };
    const refused = resultOf(await guard(store2, { maxUnhealthy: 1 }).execute(acquire("n1")));
    expect(refused.data.ok).toBe(false);
    expect(refused.data.reason).toMatch(/already in remediation \(other\), maxUnhealthy 1 allows 1/);
    expect(Object.keys(inner2.current().slots)).toEqual(["other"]);
  });

  it("reports a store failure that is not a conflict as a failed command", async () => {
    const store: BudgetStore = {
      read: async () => ({ budget: { v: 1, slots: {} } as FleetBudget, revision: 0 }),
      write: async () => {
        throw new FencelineError(ErrorCode.NatsUnavailable, "KV unavailable");
      },
    };
    const result = resultOf(await guard(store).execute(acquire("n1")));
    expect(result.data).toMatchObject({ ok: false, reason: "KV unavailable" });
  });

  it("gives up after repeated conflicts instead of spinning forever", async () => {
    let writes = 0;
    const store: BudgetStore = {
      read: async () => ({ budget: { v: 1, slots: {} }, revision: 0 }),
      write: async () => {
        writes++;
        throw new FencelineError(ErrorCode.Concurrency, "always stale");
      },
    };
    const result = resultOf(await guard(store).execute(acquire("n1")));
    expect(result.data).toMatchObject({ ok: false, reason: "always stale" });
    expect(writes).toBeGreaterThan(1);
    expect(writes).toBeLessThan(100);
  });

  it("never exceeds maxUnhealthy with two guards sharing a store: 10 concurrent acquires, 1 granted", async () => {
    const store = createMemoryBudgetStore();
    const guards = [guard(store, { maxUnhealthy: 1 }), guard(store, { maxUnhealthy: 1 })];
    const nodes = Array.from({ length: 10 }, (_, i) => `n${i}`);
    const results = (await Promise.all(nodes.map((node, i) => guards[i % 2]!.execute(acquire(node))))).map(resultOf);
    const granted = results.filter((r) => r.data.ok);
    expect(granted).toHaveLength(1);
    expect(Object.keys(store.current().slots)).toEqual([granted[0]!.node]);
    for (const r of results.filter((r) => !r.data.ok)) {
      expect(r.data.reason).toBe(`1 nodes already in remediation (${granted[0]!.node}), maxUnhealthy 1 allows 1`);
    }
  });

  it("never exceeds maxUnhealthy under concurrent acquires and releases", async () => {
    const store = createMemoryBudgetStore();
    const guards = [guard(store, { maxUnhealthy: 2 }), guard(store, { maxUnhealthy: 2 }), guard(store, { maxUnhealthy: 2 })];
    let maxHeld = 0;
    const inner = store.write.bind(store);
    store.write = async (budget, revision) => {
      const r = await inner(budget, revision);
      maxHeld = Math.max(maxHeld, Object.keys(budget.slots).length);
      return r;
    };
    for (let round = 0; round < 5; round++) {
      const ops = Array.from({ length: 8 }, (_, i) => {
        const node = `n${(i + round) % 8}`;
        const c = (i + round) % 3 === 0 ? release(node) : acquire(node);
        return guards[i % 3]!.execute(c);
      });
      (await Promise.all(ops)).map(resultOf);
      expect(Object.keys(store.current().slots).length).toBeLessThanOrEqual(2);
    }
    expect(maxHeld).toBeLessThanOrEqual(2);
    expect(maxHeld).toBeGreaterThan(0);
  });

  it("refuses while the newest membership view is not yet in its view, and passes the node's version on", async () => {
    const clock = new VirtualClock(5_000);
    let latest = 3;
    const views = [2, 3].map((version) => ({
      version,
      members: 3,
      witness: 0 as const,
      votes: 3,
      healthy: version === 2 ? 1 : 3,
      majority: version !== 2,
      majoritySince: version === 2 ? null : 0,
    }));
    const view = (): FleetView => ({ fleetSize: 3, healthy: 3, majoritySince: 0, witness: 0, views });
    const handlers = createGuardHandlers({
      store: createMemoryBudgetStore(),
      view,
      policy: Policy.parse({}),
      clock,
      latestMembershipVersion: async () => latest,
    });
    const g = createActuator({ name: "guard", handlers, clock });
    latest = 4;
    expect(resultOf(await g.execute(acquire("n1"))).data).toMatchObject({
      ok: false,
      reason: "membership view v4 is written but this guard has seen v3 only: asking again",
    });
    latest = 3;
    const stale = command("slot.acquire", { controlPlane: false, membershipVersion: 2 }, { node: "n1", now: 5_000 });
    expect(resultOf(await g.execute(stale)).data.reason).toMatch(/no healthy majority in membership view v2/);
    const current = command("slot.acquire", { controlPlane: false, membershipVersion: 3 }, { node: "n1", now: 5_000 });
    expect(resultOf(await g.execute(current)).data).toMatchObject({ ok: true, facts: { majoritySince: 0 } });
  });
});
