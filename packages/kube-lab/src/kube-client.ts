import { Agent, request as httpsRequest } from "node:https";
import type { IncomingMessage } from "node:http";

/** How to reach and authenticate to an API server. */
export type KubeAccess = {
  /** https://127.0.0.1:PORT */
  server: string;
  /** PEM of the CA that signed the API server's certificate. */
  ca: string;
  /** A bearer token (the admin token, a ServiceAccount token). */
  token: string;
};

/** Act as another user (the admin may impersonate anyone): how the simulated kubelets act as their nodes. */
export type Impersonation = { user: string; groups?: string[] };

/** A failed API call: the HTTP status and the Status object's reason and message. */
export class KubeApiError extends Error {
  override readonly name = "KubeApiError";
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly method: string,
    readonly path: string,
  ) {
    super(`${method} ${path}: ${status} ${reason}: ${message}`);
  }
}

export const isNotFound = (err: unknown) => err instanceof KubeApiError && err.status === 404;
export const isConflict = (err: unknown) => err instanceof KubeApiError && err.status === 409;

export type WatchEvent<T = KubeObject> = { type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR"; object: T };

/** Any Kubernetes object, loosely typed: the lab reads the few fields it needs. */
export type KubeObject = {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
    finalizers?: string[];
    ownerReferences?: Array<{ kind: string; name: string; uid: string; controller?: boolean }>;
    creationTimestamp?: string;
    [k: string]: unknown;
  };
  /** Loose on purpose: the lab reads a few fields of many kinds. */
  // biome-ignore lint/suspicious/noExplicitAny: loose on purpose (see above)
  spec?: any;
  // biome-ignore lint/suspicious/noExplicitAny: loose on purpose (see above)
  status?: any;
  [k: string]: unknown;
};

export type KubeList<T = KubeObject> = { metadata: { resourceVersion: string; continue?: string }; items: T[] };

export type RequestOptions = {
  query?: Record<string, string | number | boolean | undefined>;
  contentType?: string;
  /** Per-request timeout (default 30 s). */
  timeoutMs?: number;
};

export type Watch = {
  /** Resolves when the watch ends (server timeout, error, stop), with why. */
  readonly ended: Promise<"closed" | "stopped" | "gone" | "error">;
  stop(): void;
};

export type KubeClient = {
  readonly access: KubeAccess;
  request<T = KubeObject>(method: string, path: string, body?: unknown, options?: RequestOptions): Promise<T>;
  get<T = KubeObject>(path: string, options?: RequestOptions): Promise<T>;
  /** GET that answers null for a 404. */
  find<T = KubeObject>(path: string): Promise<T | null>;
  list<T = KubeObject>(path: string, query?: RequestOptions["query"]): Promise<KubeList<T>>;
  create<T = KubeObject>(path: string, body: unknown, query?: RequestOptions["query"]): Promise<T>;
  /** JSON merge patch (the default) or strategic merge patch. */
  patch<T = KubeObject>(path: string, body: unknown, options?: { strategic?: boolean; query?: RequestOptions["query"] }): Promise<T>;
  /** Server-side apply as `fieldManager`. */
  apply<T = KubeObject>(path: string, body: unknown, fieldManager: string, query?: RequestOptions["query"]): Promise<T>;
  /** DELETE; a 404 is success (returns false). */
  delete(path: string, body?: unknown, query?: RequestOptions["query"]): Promise<boolean>;
  /** Streams watch events from `resourceVersion` until the server ends the watch or `stop()`. */
  watch<T = KubeObject>(path: string, query: RequestOptions["query"], onEvent: (event: WatchEvent<T>) => void): Watch;
  /** The same server and credentials, acting as another user. */
  as(impersonate: Impersonation): KubeClient;
  close(): void;
};

const agents = new Map<string, Agent>();
function agentFor(access: KubeAccess): Agent {
  const key = `${access.server}\n${access.ca}`;
  let agent = agents.get(key);
  if (!agent) {
    agent = new Agent({ ca: access.ca, keepAlive: true, maxSockets: 32, maxFreeSockets: 8 });
    agents.set(key, agent);
  }
  return agent;
}

function withQuery(path: string, query: RequestOptions["query"]): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
  const qs = params.toString();
  return qs ? `${path}${path.includes("?") ? "&" : "?"}${qs}` : path;
}

function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = "";
    res.setEncoding("utf8");
    res.on("data", (c: string) => (data += c));
    res.on("end", () => resolve(data));
    res.on("error", reject);
  });
}

function apiError(method: string, path: string, status: number, text: string): KubeApiError {
  let reason = "";
  let message = text.slice(0, 500);
  try {
    const parsed = JSON.parse(text) as { reason?: string; message?: string };
    reason = parsed.reason ?? "";
    message = parsed.message ?? message;
  } catch {
    // not a Status object
  }
  return new KubeApiError(status, reason, message, method, path);
}

/**
 * The User-Agent of every request of the lab's client, so that an API server's audit log tells
 * the lab's own requests (kubelets, test helpers and probes) from Fenceline's, which go through
 * @kubernetes/client-node.
 */
export const KUBE_LAB_USER_AGENT = "fenceline-kube-lab";

/**
 * A small JSON client for the Kubernetes API over HTTPS (keep-alive, bearer token,
 * impersonation headers, streaming watches). The lab's kubelets and test helpers use it;
 * Fenceline itself talks through @kubernetes/client-node (`@fenceline/kubernetes`).
 */
export function createKubeClient(access: KubeAccess, impersonate?: Impersonation): KubeClient {
  const url = new URL(access.server);
  const agent = agentFor(access);
  const headers = (contentType?: string): Record<string, string | string[]> => {
    const h: Record<string, string | string[]> = {
      Authorization: `Bearer ${access.token}`,
      Accept: "application/json",
      "User-Agent": KUBE_LAB_USER_AGENT,
    };
    if (contentType) h["Content-Type"] = contentType;
    if (impersonate) {
      h["Impersonate-User"] = impersonate.user;
      if (impersonate.groups?.length) h["Impersonate-Group"] = impersonate.groups;
    }
    return h;
  };

  const request = <T>(method: string, path: string, body?: unknown, options: RequestOptions = {}): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const full = withQuery(path, options.query);
      const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
      const req = httpsRequest(
        {
          host: url.hostname,
          port: url.port,
          method,
          path: full,
          agent,
          headers: {
            ...headers(payload === undefined ? undefined : (options.contentType ?? "application/json")),
            // Always a length: Node sends a DELETE body unframed otherwise, and the next request on the connection is garbled.
            ...(payload === undefined ? {} : { "Content-Length": String(Buffer.byteLength(payload)) }),
          },
        },
        (res) => {
          readBody(res).then((text) => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              try {
                resolve((text ? JSON.parse(text) : {}) as T);
              } catch (err) {
                reject(err);
              }
            } else reject(apiError(method, full, status, text));
          }, reject);
        },
      );
      req.setTimeout(options.timeoutMs ?? 30_000, () =>
        req.destroy(new Error(`${method} ${full}: no answer in ${options.timeoutMs ?? 30_000} ms`)),
      );
      req.on("error", reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });

  const client: KubeClient = {
    access,
    request,
    get: (path, options) => request("GET", path, undefined, options),
    async find<T>(path: string) {
      try {
        return await request<T>("GET", path);
      } catch (err) {
        if (isNotFound(err)) return null;
        throw err;
      }
    },
    list: (path, query) => request("GET", path, undefined, { query }),
    create: (path, body, query) => request("POST", path, body, { query }),
    patch: (path, body, options = {}) =>
      request("PATCH", path, body, {
        contentType: options.strategic ? "application/strategic-merge-patch+json" : "application/merge-patch+json",
        query: options.query,
      }),
    apply: (path, body, fieldManager, query) =>
      request("PATCH", path, body, { contentType: "application/apply-patch+yaml", query: { fieldManager, force: true, ...query } }),
    async delete(path, body, query) {
      try {
        await request("DELETE", path, body, { query });
        return true;
      } catch (err) {
        if (isNotFound(err)) return false;
        throw err;
      }
    },
    watch<T>(path: string, query: RequestOptions["query"], onEvent: (event: WatchEvent<T>) => void): Watch {
      let stopped = false;
      let abort: (() => void) | null = null;
      const ended = new Promise<"closed" | "stopped" | "gone" | "error">((resolve) => {
        const full = withQuery(path, { ...query, watch: 1, allowWatchBookmarks: true });
        const req = httpsRequest({ host: url.hostname, port: url.port, method: "GET", path: full, agent, headers: headers() }, (res) => {
          if ((res.statusCode ?? 0) >= 300) {
            void readBody(res).then(() => resolve(res.statusCode === 410 ? "gone" : "error"));
            return;
          }
          let buffered = "";
          let outcome: "closed" | "gone" | "error" = "closed";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            buffered += chunk;
            let nl: number;
            while ((nl = buffered.indexOf("\n")) >= 0) {
              const line = buffered.slice(0, nl);
              buffered = buffered.slice(nl + 1);
              if (!line.trim()) continue;
              let event: WatchEvent<T>;
              try {
                event = JSON.parse(line) as WatchEvent<T>;
              } catch {
                continue;
              }
              if (event.type === "ERROR") {
                outcome = (event.object as { code?: number }).code === 410 ? "gone" : "error";
                req.destroy();
                return;
              }
              if (!stopped) onEvent(event);
            }
          });
          res.on("end", () => resolve(stopped ? "stopped" : outcome));
          res.on("error", () => resolve(stopped ? "stopped" : outcome === "closed" ? "error" : outcome));
          res.on("close", () => resolve(stopped ? "stopped" : outcome));
        });
        req.on("error", () => resolve(stopped ? "stopped" : "error"));
        req.end();
        abort = () => req.destroy();
      });
      return {
        ended,
        stop() {
          stopped = true;
          abort?.();
        },
      };
    },
    as: (who) => createKubeClient(access, who),
    close() {
      agent.destroy();
      agents.delete(`${access.server}\n${access.ca}`);
    },
  };
  return client;
}
