import { ErrorCode, FencelineError, type Clock, type Policy } from "@fenceline/contracts";
import type { Handlers } from "./actuator.js";
import { decideSlot, releaseSlot, type FleetBudget, type FleetView } from "./fleet-guard.js";

/** The budget with compare-and-set: `write` fails with a Concurrency error when `revision` is stale. */
export interface BudgetStore {
  read(): Promise<{ budget: FleetBudget; revision: number }>;
  write(budget: FleetBudget, revision: number): Promise<number>;
}

async function withCas<T>(store: BudgetStore, change: (budget: FleetBudget) => { budget: FleetBudget; value: T }): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const { budget, revision } = await store.read();
    const { budget: next, value } = change(budget);
    if (next === budget) return value;
    try {
      await store.write(next, revision);
      return value;
    } catch (err) {
      if (!(err instanceof FencelineError && err.code === ErrorCode.Concurrency) || attempt >= 20) throw err;
    }
  }
}

/**
 * The fleet guard: grants and releases remediation slots under the policy's limits.
 * `latestMembershipVersion` reads the newest membership version from the store itself: a guard
 * whose watch has not seen it yet refuses (and the node asks again) rather than check a node
 * against fewer views than it may hold.
 */
export function createGuardHandlers(options: {
  store: BudgetStore;
  view: () => FleetView;
  policy: Policy;
  clock: Clock;
  latestMembershipVersion?: () => Promise<number>;
  /**
   * The oldest view the guard knows a node may hold (the tracker's `viewFloor`): checked as well
   * as the version the engine's record carries, whichever is older.
   */
  viewFloor?: (node: string) => number | undefined;
}): Handlers {
  const { store, view, policy, clock } = options;
  return {
    "slot.acquire": async (c) => {
      if (options.latestMembershipVersion && policy.fencing.watchdog) {
        const latest = await options.latestMembershipVersion();
        const seen = view().views?.at(-1)?.version ?? 0;
        if (latest > seen)
          return { ok: false, reason: `membership view v${latest} is written but this guard has seen v${seen} only: asking again` };
      }
      const known = [c.params.membershipVersion, options.viewFloor?.(c.node)].filter((v): v is number => v !== undefined && v > 0);
      const membershipVersion = known.length > 0 ? Math.min(...known) : undefined;
      const decision = await withCas(store, (budget) => {
        const d = decideSlot(
          budget,
          view(),
          {
            node: c.node,
            controlPlane: c.params.controlPlane,
            at: clock.now(),
            ...(membershipVersion !== undefined ? { membershipVersion } : {}),
          },
          policy,
        );
        return { budget: d.budget, value: d };
      });
      // The machine uses it to keep the safe time honest: a node silent since before the
      // healthy majority came back may only now be learning that it must fence itself. It comes
      // from the view the decision was made on (a second look could see another fleet, even in
      // the same instant); absent when that view had no healthy majority.
      const { majoritySince } = decision;
      return {
        ok: decision.granted,
        reason: decision.reason,
        ...(decision.granted && majoritySince !== undefined ? { facts: { majoritySince } } : {}),
      };
    },
    "slot.release": async (c) => {
      await withCas(store, (budget) => ({ budget: releaseSlot(budget, c.node), value: null }));
      return { ok: true };
    },
  };
}

/** An in-memory budget store with the same CAS semantics (simulator and tests). */
export function createMemoryBudgetStore(): BudgetStore & { current(): FleetBudget } {
  let budget: FleetBudget = { v: 1, slots: {} };
  let revision = 0;
  return {
    async read() {
      return { budget, revision };
    },
    async write(next, expected) {
      if (expected !== revision) throw new FencelineError(ErrorCode.Concurrency, `budget at revision ${revision}, not ${expected}`);
      budget = next;
      revision += 1;
      return revision;
    },
    current: () => budget,
  };
}
