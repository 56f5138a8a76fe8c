import { CoreV1Api, Watch, type KubeConfig, type V1Node } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { statusOf, toFencelineError } from "./errors.js";

/** What the detectors need to know about a Node object. */
export type ClusterNode = {
  name: string;
  resourceVersion: string;
  labels: Record<string, string>;
  conditions: Array<{ type: string; status: string; lastTransitionTime?: number; reason?: string; message?: string }>;
  taints: Array<{ key: string; value?: string; effect: string }>;
  unschedulable: boolean;
  bootId?: string;
};

export type NodeWatchEvent =
  | { type: "upsert"; node: ClusterNode }
  | { type: "delete"; name: string }
  /** After every (re)list: the names of every node that exists now, so missed deletions are seen. */
  | { type: "synced"; names: string[] };

/** The node watch as a port: the Kubernetes adapter in production, anything in tests. */
export interface NodeWatcher {
  start(onEvent: (event: NodeWatchEvent) => void): Promise<void>;
  stop(): Promise<void>;
}

const time = (v: unknown): number | undefined => {
  if (v === undefined || v === null) return undefined;
  const ms = v instanceof Date ? v.getTime() : new Date(String(v)).getTime();
  return Number.isFinite(ms) ? ms : undefined;
};

/** The parts of a Node object the detectors use (works on client objects and plain JSON). */
export function toClusterNode(node: V1Node): ClusterNode {
  return {
    name: node.metadata?.name ?? "",
    resourceVersion: node.metadata?.resourceVersion ?? "",
    labels: { ...(node.metadata?.labels ?? {}) },
    conditions: (node.status?.conditions ?? []).map((c) => {
      const lastTransitionTime = time(c.lastTransitionTime);
      return {
        type: c.type,
        status: c.status,
        ...(lastTransitionTime === undefined ? {} : { lastTransitionTime }),
        ...(c.reason ? { reason: c.reason } : {}),
        ...(c.message ? { message: c.message } : {}),
      };
    }),
    taints: (node.spec?.taints ?? []).map((t) => ({ key: t.key, effect: t.effect, ...(t.value ? { value: t.value } : {}) })),
    unschedulable: node.spec?.unschedulable === true,
    ...(node.status?.nodeInfo?.bootID ? { bootId: node.status.nodeInfo.bootID } : {}),
  };
}

export type NodeWatcherOptions = {
  kubeConfig: KubeConfig;
  /** Only nodes with these labels (a Kubernetes label selector). */
  labelSelector?: string;
  log?: Logger;
  /** Wait before listing again after an error (default 1 s, doubling up to 30 s). */
  retryMs?: number;
  /** The server ends each watch after this long; it is then resumed (default 300 s). */
  watchTimeoutSeconds?: number;
};

/**
 * List, then watch from the list's resourceVersion; when the watch ends it resumes from the
 * last resourceVersion seen, and after an error or a 410 Gone it lists again (and reports the
 * full set of names, so a deletion missed meanwhile is noticed).
 */
export function createNodeWatcher(options: NodeWatcherOptions): NodeWatcher {
  const { kubeConfig, log } = options;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const watch = new Watch(kubeConfig);
  const baseRetry = options.retryMs ?? 1_000;
  let running = false;
  let controller: AbortController | null = null;
  let wake: (() => void) | null = null;
  /** Ends the current watch at once on stop, even before its response headers arrived. */
  let cancelWatch: (() => void) | null = null;
  let loop: Promise<void> | null = null;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });

  async function run(onEvent: (event: NodeWatchEvent) => void) {
    let failures = 0;
    while (running) {
      let resourceVersion: string;
      try {
        const list = await core.listNode(options.labelSelector ? { labelSelector: options.labelSelector } : {});
        resourceVersion = list.metadata?.resourceVersion ?? "";
        const nodes = list.items.map(toClusterNode);
        for (const node of nodes) onEvent({ type: "upsert", node });
        onEvent({ type: "synced", names: nodes.map((n) => n.name) });
        failures = 0;
      } catch (err) {
        failures++;
        const e = toFencelineError(err, { verb: "list", resource: "nodes", group: "" }, 1);
        log?.warn({ err: e.message, status: statusOf(err) }, `node watch: cannot list nodes: ${e.message}`);
        await sleep(Math.min(30_000, baseRetry * 2 ** Math.min(failures - 1, 5)));
        continue;
      }
      // Watch until it ends; resume from the last resourceVersion; relist when it is too old.
      for (;;) {
        if (!running) return;
        const outcome = await watchOnce(resourceVersion, (rv) => (resourceVersion = rv), onEvent);
        if (outcome === "resume") continue;
        if (outcome === "error") {
          failures++;
          await sleep(Math.min(30_000, baseRetry * 2 ** Math.min(failures - 1, 5)));
        }
        break;
      }
    }
  }

  function watchOnce(
    resourceVersion: string,
    seen: (rv: string) => void,
    onEvent: (event: NodeWatchEvent) => void,
  ): Promise<"resume" | "relist" | "error"> {
    return new Promise((resolve) => {
      let outcome: "resume" | "relist" | "error" = "resume";
      cancelWatch = () => resolve("relist");
      const params: Record<string, string | number | boolean> = {
        resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: options.watchTimeoutSeconds ?? 300,
        ...(options.labelSelector ? { labelSelector: options.labelSelector } : {}),
      };
      watch
        .watch(
          "/api/v1/nodes",
          params,
          (type, object: V1Node & { code?: number; message?: string }) => {
            if (type === "ERROR") {
              // 410 Gone: our resourceVersion is too old; anything else: start over too.
              log?.info({ code: object.code, message: object.message }, "node watch: the server ended the watch; listing again");
              outcome = "relist";
              controller?.abort();
              return;
            }
            const rv = object.metadata?.resourceVersion;
            if (rv) seen(rv);
            if (type === "BOOKMARK") return;
            if (type === "DELETED") onEvent({ type: "delete", name: object.metadata?.name ?? "" });
            else if (type === "ADDED" || type === "MODIFIED") onEvent({ type: "upsert", node: toClusterNode(object) });
          },
          (err: unknown) => {
            controller = null;
            if (err && running && outcome === "resume" && !(err instanceof Error && err.name === "AbortError")) {
              log?.warn({ err: (err as Error).message }, `node watch failed: ${(err as Error).message}`);
              outcome = "error";
            }
            resolve(running ? outcome : "relist");
          },
        )
        .then((c) => {
          controller = c;
          if (!running) c.abort();
        })
        .catch((err: unknown) => {
          log?.warn({ err: (err as Error).message }, "node watch could not start");
          resolve("error");
        });
    });
  }

  return {
    async start(onEvent) {
      if (running) return;
      running = true;
      loop = run(onEvent);
    },
    async stop() {
      running = false;
      controller?.abort();
      cancelWatch?.();
      wake?.();
      await loop;
    },
  };
}
