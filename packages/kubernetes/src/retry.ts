import type { Logger } from "pino";
import {
  callOf,
  isNetworkError,
  retryAfterMs,
  RETRYABLE_STATUS,
  serverMessage,
  statusOf,
  toFencelineError,
  describeCall,
  type Call,
} from "./errors.js";

export type RetryOptions = {
  /** Attempts in all, the first included (default 6). */
  attempts?: number;
  /** First backoff (default 100 ms); doubles each time, with up to 20 % jitter. */
  baseMs?: number;
  /** Longest backoff (default 2 s). */
  maxMs?: number;
  /** Injected by tests. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
};

export type Retrier = <T>(call: Call, op: () => Promise<T>, options?: { onConflict?: () => void }) => Promise<T>;

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Runs a Kubernetes call, retrying what is worth retrying (409, 429, 500, 502, 503, 504 and
 * network errors) with exponential backoff, and honouring Retry-After. Everything else, and
 * the last failure, becomes a FencelineError that names the call (and for 403 the RBAC rule).
 */
export function createRetrier(options: RetryOptions & { log?: Logger } = {}): Retrier {
  const attempts = Math.max(1, options.attempts ?? 6);
  const baseMs = options.baseMs ?? 100;
  const maxMs = options.maxMs ?? 2_000;
  const sleep = options.sleep ?? defaultSleep;
  const random = options.random ?? Math.random;
  return async (call, op) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await op();
      } catch (err) {
        const status = statusOf(err);
        // A step of a compound operation (the read before a patch) may have failed: name that one.
        const failed = callOf(err) ?? call;
        const retryable = status === null ? isNetworkError(err) : RETRYABLE_STATUS.has(status);
        if (!retryable || attempt >= attempts) throw toFencelineError(err, failed, attempt);
        const backoff = Math.min(maxMs, baseMs * 2 ** (attempt - 1)) * (1 + 0.2 * random());
        const delay = Math.max(backoff, Math.min(retryAfterMs(err) ?? 0, 10_000));
        options.log?.warn(
          { call: describeCall(failed), status, attempt, delayMs: Math.round(delay), message: serverMessage(err) },
          `kubernetes: ${describeCall(failed)} failed${status === null ? "" : ` with ${status}`}; retrying in ${Math.round(delay)} ms`,
        );
        await sleep(delay);
      }
    }
  };
}
