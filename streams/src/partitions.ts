import { ErrorCode, FencelineError, nodeToken } from "@fenceline/contracts";

/**
 * Node events are split into partitions so that several engine instances can share a fleet:
 * each partition has its own durable consumer (`engine-<p>`, filter `fl.evt.<p>.*`) and at
 * most one instance owns it at a time. A node's partition is a stable hash of its name, so all
 * of a node's events land in one partition, in order.
 *
 * The server computes it: publishers write `fl.evt.<node>`, and FL_EVENTS's subject transform
 * (`partition(n, 1)`, see definitions.ts) stores the event as `fl.evt.<p>.<node>`. So only the
 * engine (the consumers and the transform it provisions) needs the count: 16 unless
 * FENCELINE_PARTITIONS says otherwise. Provisioning refuses to change the count of an existing
 * FL_EVENTS, and the engine refuses to run with another one.
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

/** 32-bit FNV-1a of the UTF-8 bytes of `text` (Go's hash/fnv New32a). */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0x7f) return fnv1aBytes(Buffer.from(text, "utf8"));
    hash ^= code;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

function fnv1aBytes(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (const byte of bytes) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/**
 * The partition of a node, exactly as nats-server's `partition(n, 1)` computes it from the
 * subject `fl.evt.<node token>`: FNV-1a (32-bit) of the token's bytes, modulo the count
 * (server/subject_transform.go, getHashPartition). The token, not the name: a name's dots are
 * '_' in its token, and the hashes differ.
 */
export function partitionOf(node: string, partitions: number = eventPartitions()): number {
  return fnv1a(nodeToken(node)) % partitions;
}
