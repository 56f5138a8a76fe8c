/**
 * Stable error codes. Every error Fenceline raises on purpose carries one, so callers can
 * branch on `code` instead of parsing messages (nats.js style).
 */
export const ErrorCode = {
  InvalidPolicy: "INVALID_POLICY",
  InvalidMessage: "INVALID_MESSAGE",
  NatsUnavailable: "NATS_UNAVAILABLE",
  NatsServerMissing: "NATS_SERVER_MISSING",
  NatsServerTooOld: "NATS_SERVER_TOO_OLD",
  Concurrency: "CONCURRENCY_CONFLICT",
  StaleEpoch: "STALE_EPOCH",
  NotFound: "NOT_FOUND",
  Forbidden: "FORBIDDEN",
  Timeout: "TIMEOUT",
  Internal: "INTERNAL",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class FencelineError extends Error {
  override readonly name: string = "FencelineError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function isFencelineError(err: unknown, code?: ErrorCode): err is FencelineError {
  return err instanceof FencelineError && (code === undefined || err.code === code);
}
