import { z } from "zod";
import { Command } from "./commands.js";
import { NodeName } from "./names.js";

export const AUDIT_VERSION = 1;

/** One record per event the engine applied to a node, whether the state changed or not. */
export const AuditRecord = z
  .object({
    v: z.literal(AUDIT_VERSION),
    /** `audit:<node>:<event seq>`, the `Nats-Msg-Id`. */
    id: z.string(),
    node: NodeName,
    /** Sequence of the input event in FL_EVENTS. */
    seq: z.number().int().nonnegative(),
    /** Time of the input event. */
    at: z.number().int().nonnegative(),
    event: z.object({ id: z.string(), type: z.string(), source: z.string() }),
    /** State paths, e.g. "suspect" or "remediating.running". */
    from: z.string(),
    to: z.string(),
    changed: z.boolean(),
    epoch: z.number().int().nonnegative(),
    commands: z.array(Command),
    timers: z.object({ set: z.record(z.string(), z.number()), cleared: z.array(z.string()) }),
    /** Why: a guard refusal, an ignored event, an escalation, a rejoin decision. */
    reason: z.string().optional(),
    policyVersion: z.string(),
  })
  .strict();
export type AuditRecord = z.infer<typeof AuditRecord>;
