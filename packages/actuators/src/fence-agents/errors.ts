/**
 * Why a fence agent run failed. Callers branch on `code`: an `auth` or `invalid-config` failure
 * is never retried (a wrong password stays wrong, and real BMCs lock an account after a few bad
 * logins); the others may be.
 */
export const FenceErrorCode = {
  /** The device did not answer or could not be reached (network, wrong address, BMC down). */
  Unreachable: "unreachable",
  /** The device answered and refused the login: wrong user or password, or not enough privilege. */
  Auth: "auth",
  /** The agent did not finish within its time budget: killed, with everything it started. */
  Timeout: "timeout",
  /** The agent exited as if it succeeded but said nothing we can read as an answer. */
  UnexpectedOutput: "unexpected-output",
  /** The agent reported another failure (for example a power-on the device refused). */
  Failed: "failed",
  /** The power state never read back as asked within the confirmation time. */
  NotConfirmed: "not-confirmed",
  /** The agent program is missing or cannot be run. */
  NotFound: "not-found",
  /** The configuration is unusable (parameter names or values, an unreadable password). */
  InvalidConfig: "invalid-config",
} as const;
export type FenceErrorCode = (typeof FenceErrorCode)[keyof typeof FenceErrorCode];

/** Codes worth another attempt within the same budget. */
export const RETRYABLE: ReadonlySet<FenceErrorCode> = new Set([
  FenceErrorCode.Unreachable,
  FenceErrorCode.Timeout,
  FenceErrorCode.UnexpectedOutput,
  FenceErrorCode.Failed,
]);

export class FenceAgentError extends Error {
  override readonly name = "FenceAgentError";
  constructor(
    readonly code: FenceErrorCode,
    message: string,
    /** The agent's output, credentials redacted (empty when it never ran). */
    readonly output: string = "",
  ) {
    super(message);
  }
}

export function isFenceAgentError(err: unknown, code?: FenceErrorCode): err is FenceAgentError {
  return err instanceof FenceAgentError && (code === undefined || err.code === code);
}
