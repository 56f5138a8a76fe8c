import { ApiException } from "@kubernetes/client-node";
import { ErrorCode, FencelineError } from "@fenceline/contracts";

/** One Kubernetes API call, described well enough to name the RBAC rule it needs. */
export type Call = {
  verb: "get" | "list" | "watch" | "create" | "patch" | "delete";
  /** Plural resource, e.g. "nodes". */
  resource: string;
  /** API group; "" is the core group. */
  group: string;
  /** The object's name, when the call is about one object. */
  name?: string;
  namespace?: string;
};

const calls = new WeakMap<object, Call>();

/** Runs one step of a compound operation and remembers which call an error came from. */
export async function step<T>(call: Call, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (typeof err === "object" && err !== null && !calls.has(err)) calls.set(err, call);
    throw err;
  }
}

export function callOf(err: unknown): Call | undefined {
  return typeof err === "object" && err !== null ? calls.get(err) : undefined;
}

/** Status codes worth another try: conflicts, throttling, and the server's transient failures. */
export const RETRYABLE_STATUS = new Set([409, 429, 500, 502, 503, 504]);

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "UND_ERR_SOCKET",
]);

/** The HTTP status of a failed call, or null when it never got an answer (network error). */
export function statusOf(err: unknown): number | null {
  if (err instanceof ApiException) return err.code;
  const code = (err as { code?: unknown; statusCode?: unknown } | null)?.statusCode ?? (err as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : null;
}

/** A connection refused, reset or timed out: the API server may be back in a moment. */
export function isNetworkError(err: unknown): boolean {
  if (err instanceof ApiException) return false;
  const e = err as { code?: unknown; type?: unknown; cause?: { code?: unknown } } | null;
  if (!e) return false;
  if (typeof e.code === "string" && NETWORK_CODES.has(e.code)) return true;
  if (typeof e.cause?.code === "string" && NETWORK_CODES.has(e.cause.code)) return true;
  return e.type === "system" || e.type === "request-timeout";
}

/** The `message` of the Kubernetes Status object in an error body, when there is one. */
export function serverMessage(err: unknown): string | undefined {
  if (!(err instanceof ApiException)) return err instanceof Error ? err.message : undefined;
  const body: unknown = err.body;
  let parsed: unknown = body;
  if (typeof body === "string") {
    try {
      parsed = JSON.parse(body);
    } catch {
      return body.slice(0, 500) || undefined;
    }
  }
  const message = (parsed as { message?: unknown } | null)?.message;
  return typeof message === "string" ? message : undefined;
}

/** The seconds of a `Retry-After` header (429 and 503 may carry one). */
export function retryAfterMs(err: unknown): number | null {
  if (!(err instanceof ApiException)) return null;
  const headers = err.headers as Record<string, string | undefined> | undefined;
  const value = headers?.["retry-after"] ?? headers?.["Retry-After"];
  const seconds = value === undefined ? NaN : Number(value);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : null;
}

export function describeCall(call: Call): string {
  const what = call.name === undefined ? call.resource : `${call.resource}/${call.name}`;
  return `${call.verb} ${call.group === "" ? "" : `${call.group}/`}${what}${call.namespace ? ` in namespace ${call.namespace}` : ""}`;
}

/** The RBAC rule a call needs, as it would appear in a ClusterRole. */
export function rbacRule(call: Call): string {
  return `{ apiGroups: ["${call.group}"], resources: ["${call.resource}"], verbs: ["${call.verb}"] }`;
}

/** Turns a failed call into a FencelineError that says what went wrong and, for 401/403, what to grant. */
export function toFencelineError(err: unknown, call: Call, attempts: number): FencelineError {
  const status = statusOf(err);
  const message = serverMessage(err);
  const detail = message ? `: ${message}` : "";
  if (status === 403) {
    return new FencelineError(
      ErrorCode.Forbidden,
      `Kubernetes refused to ${describeCall(call)} (403 Forbidden${detail}); the service account needs the RBAC rule ${rbacRule(call)} in its ClusterRole (see deploy/rbac.yaml)`,
      { cause: err },
    );
  }
  if (status === 401) {
    return new FencelineError(
      ErrorCode.Forbidden,
      `Kubernetes did not accept our credentials for ${describeCall(call)} (401 Unauthorized${detail}); check the kubeconfig user or the service account token`,
      { cause: err },
    );
  }
  if (status === 404) {
    return new FencelineError(ErrorCode.NotFound, `${describeCall(call)}: not found${detail}`, { cause: err });
  }
  if (status === null && isNetworkError(err)) {
    return new FencelineError(
      ErrorCode.Timeout,
      `cannot reach the Kubernetes API server to ${describeCall(call)} after ${attempts} attempts${detail}`,
      { cause: err },
    );
  }
  const tries = attempts > 1 ? ` after ${attempts} attempts` : "";
  return new FencelineError(
    status === 409 ? ErrorCode.Concurrency : status === 503 || status === 504 ? ErrorCode.Timeout : ErrorCode.Internal,
    `${describeCall(call)} failed${tries}${status === null ? "" : ` (HTTP ${status})`}${detail}`,
    { cause: err },
  );
}
