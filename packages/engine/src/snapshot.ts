import type { StateValue } from "xstate";
import { z } from "zod";
import { ErrorCode, FencelineError, NodeName } from "@fenceline/contracts";
import { NodeContextSchema, type NodeContext } from "@fenceline/statecharts";

/** What the engine keeps per node in FL_NODES. */
export type NodeSnapshot = {
  v: 1;
  node: string;
  value: StateValue;
  /** The state as a path, e.g. "suspect.requestingSlot". */
  path: string;
  context: NodeContext;
  /** Sequence in FL_EVENTS of the last event applied: redelivered events at or below it are skipped. */
  lastSeq: number;
  policyVersion: string;
  /** Time of the last applied event. */
  updatedAt: number;
};

const StateValueSchema: z.ZodType<StateValue> = z.lazy(() => z.union([z.string(), z.record(z.string(), StateValueSchema)]));

/** A FL_NODES value, parsed like every message (older snapshots upgraded: see NodeContextSchema). */
export const NodeSnapshotSchema: z.ZodType<NodeSnapshot> = z
  .object({
    v: z.literal(1),
    node: NodeName,
    value: StateValueSchema,
    path: z.string().min(1),
    context: NodeContextSchema,
    lastSeq: z.number().int().nonnegative(),
    policyVersion: z.string(),
    updatedAt: z.number(),
  })
  .strict();

const decoder = new TextDecoder();

/**
 * Parses the FL_NODES value of `key`. Throws a FencelineError (InvalidMessage) that names the key
 * and every problem when it is not JSON, not a snapshot, or the snapshot of another node: a
 * snapshot is never guessed at (the engine would rather stop on that node than act on it).
 */
export function parseSnapshot(key: string, data: Uint8Array | string): NodeSnapshot {
  let json: unknown;
  try {
    json = JSON.parse(typeof data === "string" ? data : decoder.decode(data));
  } catch (err) {
    throw new FencelineError(ErrorCode.InvalidMessage, `FL_NODES "${key}" is not JSON: ${(err as Error).message}`);
  }
  const parsed = NodeSnapshotSchema.safeParse(json);
  if (!parsed.success)
    throw new FencelineError(ErrorCode.InvalidMessage, `FL_NODES "${key}" is not a valid node snapshot:\n${z.prettifyError(parsed.error)}`);
  if (parsed.data.node !== key)
    throw new FencelineError(ErrorCode.InvalidMessage, `FL_NODES "${key}" holds the snapshot of node "${parsed.data.node}"`);
  return parsed.data;
}
