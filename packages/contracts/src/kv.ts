import { z } from "zod";
import { NodeName } from "./names.js";

/**
 * The values the control plane keeps in KV buckets besides the node snapshots, parsed with these
 * schemas when read back like every message: a bug, an older release or a manual `nats kv put`
 * may have written anything there.
 */

/** FL_FLEET `budget`: the remediation slots held, updated by compare-and-set by the fleet guard. */
export const FleetBudget = z
  .object({
    v: z.literal(1),
    slots: z.record(NodeName, z.object({ since: z.number(), controlPlane: z.boolean() }).strict()),
  })
  .strict();
export type FleetBudget = z.infer<typeof FleetBudget>;

const Owner = z.string().max(64);

/** FL_LEASES `p<k>`: who works partition k, until when. An empty owner is a released lease. */
export const PartitionLease = z.object({ owner: Owner, incarnation: z.string().max(64), expiresAt: z.number() }).strict();
export type PartitionLease = z.infer<typeof PartitionLease>;

/** FL_LEASES `i.<id>`: an engine instance announcing itself; live until `expiresAt`. */
export const EngineInstance = z.object({ id: Owner.min(1), incarnation: z.string().max(64), expiresAt: z.number() }).strict();
export type EngineInstance = z.infer<typeof EngineInstance>;
