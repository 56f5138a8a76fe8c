import { readFileSync } from "node:fs";
import { z } from "zod";
import { DEFAULT_POLICY, ErrorCode, FencelineError, Policy } from "@fenceline/contracts";

/** Loads a policy from a JSON file (absent: the defaults), with every problem listed. */
export function loadPolicy(path: string | undefined, fallback: Policy = DEFAULT_POLICY): Policy {
  if (!path) return fallback;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new FencelineError(ErrorCode.InvalidPolicy, `cannot read policy ${path}: ${(err as Error).message}`);
  }
  const parsed = Policy.safeParse(raw);
  if (!parsed.success) throw new FencelineError(ErrorCode.InvalidPolicy, `invalid policy ${path}:\n${z.prettifyError(parsed.error)}`);
  return parsed.data;
}
