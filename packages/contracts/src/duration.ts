import { z } from "zod";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A duration in milliseconds, written either as a number of milliseconds or as a string with a
 * unit: "250ms", "5s", "2m", "1h".
 */
export const Duration = z.union([
  z.number().int().nonnegative(),
  z
    .string()
    .regex(/^\d+(\.\d+)?(ms|s|m|h)$/, "a duration like 250ms, 5s, 2m or 1h")
    .transform((text) => {
      const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text)!;
      return Math.round(Number(match[1]) * UNITS[match[2]!]!);
    }),
]);

export function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0 && ms >= 3_600_000) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms >= 60_000) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms >= 1000) return `${ms / 1000}s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(1)}s`;
  return `${ms}ms`;
}
