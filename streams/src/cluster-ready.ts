import { JetStreamApiError } from "@nats-io/jetstream";

/** nats-server's JSClusterNotAvailErr: "JetStream system temporarily unavailable" (no meta leader yet, or none any more). */
const CLUSTER_NOT_AVAILABLE = 10008;
/** nats-server's JSClusterNoPeersErrF: "no suitable peers for placement", with the reasons after a comma. */
const NO_SUITABLE_PEERS = 10005;
/**
 * The same with no reason at all: the meta leader knows fewer servers than the replicas asked
 * for. A server of the cluster that has not started yet (or not yet reached the others) gives
 * exactly this, and it lasts until that server joins; so does a cluster that is simply too small.
 */
const NO_PEERS_KNOWN = "no suitable peers for placement";
/**
 * nats-server's JSConsumerReplicasExceedsStream. Right after a stream's replicas are raised, its
 * new peers join over a few hundred milliseconds, and until they have, its consumers cannot be
 * raised to the same count (nor when the stream's own count is lower, which provisioning, raising
 * the stream first, never leaves).
 */
const CONSUMER_REPLICAS_EXCEED_STREAM = 10126;

/**
 * Why a JetStream API request failed because the cluster cannot answer or place yet, though it
 * may soon (a cluster forming: its meta leader being elected, a server not yet started or not
 * yet, or for a moment no longer, online), or null for any other failure. Placement refused for
 * other reasons (storage, tags) is not waited for. A cluster with fewer servers than the replicas
 * cannot be told apart from one whose last server is still starting, so it is waited for, and the
 * reason given says both.
 */
export function clusterNotReady(err: unknown): string | null {
  if (err instanceof JetStreamApiError) {
    if (err.code === CLUSTER_NOT_AVAILABLE) return err.message;
    if (err.code === NO_SUITABLE_PEERS && /peer offline/.test(err.message)) return err.message;
    if (err.code === NO_SUITABLE_PEERS && err.message === NO_PEERS_KNOWN) {
      return `${err.message}: fewer servers have joined the cluster than the replicas asked for (one still starting?)`;
    }
    if (err.code === CONSUMER_REPLICAS_EXCEED_STREAM) return `${err.message}: the stream is still adding the replicas asked for`;
    return null;
  }
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (e.name === "TimeoutError") return "a JetStream API request timed out";
  }
  return null;
}

/** A JetStream cluster that was still not ready when the wait ran out (its cause: the last failure). */
export class ClusterNotReadyError extends Error {
  override name = "ClusterNotReadyError";
}

export type ClusterWait = {
  /** How long in all (default 60 s). */
  waitMs?: number;
  log?: { warn(obj: object, msg?: string): void };
  /** Waits `ms` (tests pass their own). */
  sleep?: (ms: number) => Promise<void>;
};

/**
 * Runs `request` until it does not fail with `clusterNotReady` or `waitMs` has passed since the
 * first try, backing off from 250 ms to 2 s and logging a warning at most every 5 s; then a
 * ClusterNotReadyError says how long it waited and why (its cause: the last failure).
 */
export function createClusterWait(options: ClusterWait = {}) {
  const waitMs = options.waitMs ?? 60_000;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const since = Date.now();
  let warned = 0;
  return async function whenReady<T>(what: string, request: () => Promise<T>): Promise<T> {
    let delay = 250;
    for (;;) {
      try {
        return await request();
      } catch (err) {
        const why = clusterNotReady(err);
        if (why === null) throw err;
        const waited = Date.now() - since;
        if (waited >= waitMs) {
          throw new ClusterNotReadyError(`the JetStream cluster was not ready within ${Math.round(waited / 1000)} s (${why})`, {
            cause: err,
          });
        }
        if (warned === 0 || Date.now() - warned >= 5_000) {
          warned = Date.now();
          options.log?.warn({ what, reason: why, waitedMs: waited }, `${what}: the JetStream cluster is not ready (${why}); waiting`);
        }
        await sleep(Math.min(delay, waitMs - waited));
        delay = Math.min(2_000, delay * 2);
      }
    }
  };
}
