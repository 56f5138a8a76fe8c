import { z } from "zod";

/** What lands on `fl.dlq.<source>` when an input fails validation. */
export const DeadLetter = z
  .object({
    v: z.literal(1),
    /** The subject the bad message arrived on. */
    subject: z.string(),
    reason: z.enum(["oversize", "not-json", "unknown-type", "schema", "stale", "forbidden"]),
    /** Human-readable: the zod error, prettified, or the size limit. */
    error: z.string(),
    receivedAt: z.number().int().nonnegative(),
    /** The payload as text, cut to 4 KiB. */
    payload: z.string(),
    payloadBytes: z.number().int().nonnegative(),
  })
  .strict();
export type DeadLetter = z.infer<typeof DeadLetter>;
