import type { KV } from "@nats-io/kv";
import { ErrorCode, FencelineError, FleetBudget as FleetBudgetSchema, parseMessage } from "@fenceline/contracts";
import type { BudgetStore } from "../guard-handlers.js";
import { EMPTY_BUDGET, type FleetBudget } from "../fleet-guard.js";

const KEY = "budget";

/** The fleet budget in FL_FLEET; every engine instance updates it with compare-and-set. */
export function createKvBudgetStore(kv: KV): BudgetStore {
  return {
    async read() {
      const entry = await kv.get(KEY);
      if (!entry || entry.operation !== "PUT") return { budget: EMPTY_BUDGET, revision: 0 };
      // Parsed like every message. An invalid budget is never taken as empty (that would grant
      // slots beyond the limits): the guard refuses with this reason until it is fixed.
      const parsed = parseMessage(FleetBudgetSchema, entry.value);
      if (!parsed.ok)
        throw new FencelineError(
          ErrorCode.InvalidMessage,
          `FL_FLEET "${KEY}" is not a valid fleet budget (${parsed.reason}): ${parsed.error}`,
        );
      return { budget: parsed.value satisfies FleetBudget, revision: entry.revision };
    },
    async write(budget, revision) {
      try {
        return revision === 0 ? await kv.create(KEY, JSON.stringify(budget)) : await kv.update(KEY, JSON.stringify(budget), revision);
      } catch (err) {
        throw new FencelineError(ErrorCode.Concurrency, `fleet budget changed under revision ${revision}`, { cause: err });
      }
    },
  };
}
