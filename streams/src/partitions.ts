import { ErrorCode, FencelineError } from "@fenceline/contracts";

/**
 * Node events are split into partitions so that several engine instances can share a fleet:
 * each partition has its own durable consumer (`engine-<p>`, filter `fl.evt.<p>.*`) and at
 * most one instance owns it at a time (a lease in FL_LEASES). A node's partition is a stable
 * hash of its name, so all of a node's events land in one partition, in order.
 *
 * The count is part of the subject every publisher writes (`fl.evt.<p>.<node>`), so every
 * process of a deployment must use the same one: 16 unless FENCELINE_PARTITIONS says
 * otherwise. The engine records it in FL_LEASES and refuses to start with another.
 */
export const DEFAULT_PARTITIONS = 16;
export const MAX_PARTITIONS = 256;

let configured: number | undefined;

/** The deployment's partition count: FENCELINE_PARTITIONS, or 16. */
export function eventPartitions(): number {
  if (configured !== undefined) return configured;
  const raw = process.env.FENCELINE_PARTITIONS;
  configured = raw === undefined || raw === "" ? DEFAULT_PARTITIONS : checkPartitions(Number(raw), "FENCELINE_PARTITIONS");
  return configured;
}

export function checkPartitions(n: number, what = "partitions"): number {
  if (!Number.isInteger(n) || n < 1 || n > MAX_PARTITIONS) {
    throw new FencelineError(ErrorCode.InvalidMessage, `${what} must be an integer from 1 to ${MAX_PARTITIONS}, got ${JSON.stringify(n)}`);
  }
  return n;
}

/** 32-bit FNV-1a of the UTF-16 code units (node names are ASCII). */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The partition of a node: FNV-1a of its name, modulo the partition count. */
export function partitionOf(node: string, partitions: number = eventPartitions()): number {
  return fnv1a(node) % partitions;
}
