import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isFencelineError, type Clock, type Taint } from "@fenceline/contracts";
import type { InMemoryCluster } from "../cluster.js";
import {
  mergePatch,
  NAMESPACE,
  nodeSignature,
  podSignature,
  REASONS,
  renderNode,
  renderPod,
  renderVolumeAttachment,
  status,
  vaName,
  vaSignature,
  type ConditionStatus,
  type Json,
  type NodeOverlay,
} from "./objects.js";
import { parseFieldSelector, parseLabelSelector, SelectorError } from "./selectors.js";

export type ResourceKind = "nodes" | "pods" | "volumeattachments";

export type FaultRule = {
  /** HTTP status to answer with (409, 429, 500, 503, 403...). */
  status: number;
  /** How many matching requests get it (default 1; Infinity for all). */
  times?: number;
  /** Only this method (GET, PATCH, DELETE...). */
  method?: string;
  /** Only paths containing this string, or matching this expression. */
  path?: string | RegExp;
  message?: string;
};

export type RequestRecord = { at: number; method: string; path: string; status: number };

export type KubernetesApiServerOptions = {
  cluster: InMemoryCluster;
  clock?: Pick<Clock, "now">;
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /**
   * The node controller marks a node Ready=Unknown this long after its kubelet stopped posting
   * status (kube-controller-manager --node-monitor-grace-period; 50 s by default since 1.32).
   */
  nodeMonitorGracePeriodMs?: number;
  /** Extra labels per node (besides kubernetes.io/hostname and kubernetes.io/os). */
  nodeLabels?: (node: string) => Record<string, string>;
  /** Nodes labelled node-role.kubernetes.io/control-plane. */
  controlPlaneNodes?: readonly string[];
  /**
   * Bearer token clients must send (the kubeconfig carries it); null (the default): no
   * authentication. kubectl sends no token over plain HTTP, so only library clients can use one.
   */
  token?: string | "random" | null;
  /** Watch events kept for resuming a watch from a resourceVersion (default 10 000). */
  historySize?: number;
};

type Stored = { key: string; rv: number; sig: string; object: Json };
type Watcher = {
  kind: ResourceKind;
  matches: (object: Json) => boolean;
  res: ServerResponse;
  closed: boolean;
};
type HistoryEntry = { rv: number; kind: ResourceKind; type: "ADDED" | "MODIFIED" | "DELETED"; object: Json; previous?: Json };

const FIELDS: Record<ResourceKind, readonly string[]> = {
  nodes: ["metadata.name", "spec.unschedulable"],
  pods: ["metadata.name", "metadata.namespace", "spec.nodeName", "status.phase"],
  volumeattachments: ["metadata.name"],
};

const LIST_KIND: Record<ResourceKind, { kind: string; apiVersion: string }> = {
  nodes: { kind: "NodeList", apiVersion: "v1" },
  pods: { kind: "PodList", apiVersion: "v1" },
  volumeattachments: { kind: "VolumeAttachmentList", apiVersion: "storage.k8s.io/v1" },
};

const UNSCHEDULABLE_TAINT: Taint = { key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" };

const get = (object: Json, path: string): unknown =>
  path.split(".").reduce<unknown>((o, k) => (o !== null && typeof o === "object" ? (o as Json)[k] : undefined), object);

class HttpError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details?: Json,
  ) {
    super(message);
  }
}

/**
 * The simulated cluster behind a Kubernetes REST API on a loopback port: the subset the
 * Fenceline adapter and node detector use, and that standard clients need to list nodes and
 * see taints (nodes, pods, volumeattachments, version; get, list with label and field
 * selectors, watch, merge/strategic-merge patch of nodes, delete). It serves the very
 * InMemoryCluster the simulator steps (kubelets, controllers, invariants), not a copy.
 *
 * Node `Ready` comes from the model: True while the kubelet runs and reaches the API server;
 * Unknown once it has been silent for the node monitor grace period; False when a test says
 * the kubelet reports NotReady (`setNodeReady`). Resource versions are one global counter;
 * watches resume from any version still in the history and get a 410 ERROR event otherwise.
 */
export class KubernetesApiServer {
  readonly #cluster: InMemoryCluster;
  readonly #clock: Pick<Clock, "now">;
  readonly #options: KubernetesApiServerOptions;
  readonly #graceMs: number;
  readonly #token: string | null;
  readonly #server: Server;
  readonly #overlays = new Map<string, NodeOverlay>();
  readonly #readyOverrides = new Map<string, { status: ConditionStatus; reason: string; message: string }>();
  readonly #stores: Record<ResourceKind, Map<string, Stored>> = { nodes: new Map(), pods: new Map(), volumeattachments: new Map() };
  readonly #history: HistoryEntry[] = [];
  readonly #historySize: number;
  readonly #watchers = new Set<Watcher>();
  readonly #faults: Array<FaultRule & { left: number }> = [];
  readonly requests: RequestRecord[] = [];
  /** Test hook: runs before each request is served (after authentication and fault injection). */
  onRequest: ((method: string, path: string) => void | Promise<void>) | null = null;
  #rv = 1;
  #kubeletVersion = "v1.30.0";
  #unsubscribe: (() => void) | null = null;
  #url = "";

  constructor(options: KubernetesApiServerOptions) {
    this.#options = options;
    this.#cluster = options.cluster;
    this.#clock = options.clock ?? { now: () => Date.now() };
    this.#graceMs = options.nodeMonitorGracePeriodMs ?? 50_000;
    this.#token = options.token === undefined ? null : options.token === "random" ? randomBytes(16).toString("hex") : options.token;
    this.#historySize = options.historySize ?? 10_000;
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.#send(req, res, 500, status(500, "InternalError", (err as Error).message));
        else res.end();
      });
    });
  }

  /** Listens, takes the first snapshot of the model and follows its steps. */
  async start(): Promise<this> {
    try {
      this.#kubeletVersion = `v${await this.#cluster.serverVersion()}.0`;
    } catch {
      // API "down" at start: keep the default.
    }
    this.#refreshNodes(this.#clock.now());
    this.sync();
    this.#unsubscribe = this.#cluster.onStep((now) => {
      this.#refreshNodes(now);
      this.sync();
    });
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(this.#options.port ?? 0, this.#options.host ?? "127.0.0.1", () => resolve());
    });
    const address = this.#server.address() as AddressInfo;
    this.#url = `http://${address.address.includes(":") ? `[${address.address}]` : address.address}:${address.port}`;
    return this;
  }

  get url(): string {
    return this.#url;
  }

  get token(): string | null {
    return this.#token;
  }

  async stop(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    for (const w of this.#watchers) {
      w.closed = true;
      w.res.end();
    }
    this.#watchers.clear();
    this.#server.closeAllConnections?.();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  // ---------------------------------------------------------------- hooks for tests and the demo

  /** The next matching requests fail with `status` (a Kubernetes Status body). */
  injectFault(rule: FaultRule): void {
    this.#faults.push({ ...rule, left: rule.times ?? 1 });
  }

  clearFaults(): void {
    this.#faults.length = 0;
  }

  /** PodGC of the simulated kube-controller-manager (off: an out-of-service taint never finishes). */
  setPodGcEnabled(enabled: boolean): void {
    this.#cluster.setPodGcEnabled(enabled);
  }

  /**
   * What the node's kubelet reports while it is responsive: False (NotReady, e.g. its container
   * runtime is down) or Unknown; null goes back to the model's own status. A node that stopped
   * posting is Unknown after the grace period whatever is set here.
   */
  setNodeReady(node: string, ready: "False" | "Unknown" | null, reason = "KubeletNotReady", message = "container runtime is down"): void {
    if (ready === null) this.#readyOverrides.delete(node);
    else this.#readyOverrides.set(node, { status: ready, reason, message });
    this.#refreshNodes(this.#clock.now());
    this.sync();
  }

  /** Sets (string) or removes (null) node labels, as `kubectl label` would. */
  setNodeLabels(node: string, labels: Record<string, string | null>): void {
    const overlay = this.#overlay(node);
    for (const [k, v] of Object.entries(labels)) {
      if (v === null) delete overlay.labels[k];
      else overlay.labels[k] = v;
    }
    this.sync();
  }

  /** A kubeconfig for this server (YAML). */
  kubeconfig(name = "fenceline-sim"): string {
    return [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      `- name: ${name}`,
      "  cluster:",
      `    server: ${this.#url}`,
      // Plain HTTP on loopback; @kubernetes/client-node only allows http:// with this set.
      "    insecure-skip-tls-verify: true",
      "contexts:",
      `- name: ${name}`,
      "  context:",
      `    cluster: ${name}`,
      `    user: ${name}`,
      "    namespace: default",
      `current-context: ${name}`,
      "users:",
      `- name: ${name}`,
      this.#token === null ? "  user: {}" : `  user:\n    token: ${this.#token}`,
      "",
    ].join("\n");
  }

  /** Writes the kubeconfig to `dir/kubeconfig` (mode 0600) and returns its path. */
  writeKubeconfig(dir: string, name?: string): string {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, "kubeconfig");
    writeFileSync(path, this.kubeconfig(name), { mode: 0o600 });
    return path;
  }

  // ---------------------------------------------------------------- model → API objects

  #overlay(name: string): NodeOverlay {
    let overlay = this.#overlays.get(name);
    if (overlay === undefined) {
      const now = this.#clock.now();
      overlay = {
        uid: `node-${name}`,
        createdAt: now,
        labels: {
          "kubernetes.io/hostname": name,
          "kubernetes.io/os": "linux",
          "kubernetes.io/arch": "amd64",
          ...(this.#options.controlPlaneNodes?.includes(name) ? { "node-role.kubernetes.io/control-plane": "" } : {}),
          ...(this.#options.nodeLabels?.(name) ?? {}),
        },
        unschedulable: false,
        ready: "True",
        readyReason: "KubeletReady",
        readyMessage: "kubelet is posting ready status",
        readySince: now,
        lastHeartbeat: now,
      };
      this.#overlays.set(name, overlay);
    }
    return overlay;
  }

  /** The node controller: Ready from kubelet liveness, Unknown after the grace period. */
  #refreshNodes(now: number): void {
    for (const view of this.#cluster.nodes()) {
      const overlay = this.#overlay(view.name);
      const responsive = view.power === "on" && !view.crashed && view.kubeletRunning && view.reachable;
      let next: { status: ConditionStatus; reason: string; message: string } | null = null;
      if (responsive) {
        overlay.lastHeartbeat = now;
        next = this.#readyOverrides.get(view.name) ?? {
          status: "True",
          reason: "KubeletReady",
          message: "kubelet is posting ready status",
        };
      } else if (now - overlay.lastHeartbeat >= this.#graceMs) {
        next = { status: "Unknown", reason: "NodeStatusUnknown", message: "Kubelet stopped posting node status." };
      }
      if (next !== null && next.status !== overlay.ready) {
        overlay.ready = next.status;
        overlay.readySince = now;
      }
      if (next !== null) {
        overlay.readyReason = next.reason;
        overlay.readyMessage = next.message;
      }
    }
  }

  /**
   * Compares the model with what the API last served and publishes the differences as new
   * resource versions and watch events. Called on every model step and after every change.
   */
  sync(): void {
    const workloads = new Map(this.#cluster.workloads().map((w) => [w.name, w.kind]));
    this.#syncKind(
      "nodes",
      this.#cluster.nodes().map((view) => {
        const overlay = this.#overlay(view.name);
        return {
          key: view.name,
          sig: nodeSignature(view, overlay),
          render: (rv: number) => renderNode(view, overlay, rv, this.#kubeletVersion),
        };
      }),
    );
    this.#syncKind(
      "pods",
      this.#cluster
        .pods()
        .map((pod) => ({ key: pod.name, sig: podSignature(pod), render: (rv: number) => renderPod(pod, workloads.get(pod.workload), rv) })),
    );
    this.#syncKind(
      "volumeattachments",
      this.#cluster
        .volumeAttachments()
        .map((va) => ({ key: vaName(va.volume, va.node), sig: vaSignature(va), render: (rv: number) => renderVolumeAttachment(va, rv) })),
    );
  }

  #syncKind(kind: ResourceKind, current: Array<{ key: string; sig: string; render: (rv: number) => Json }>): void {
    const store = this.#stores[kind];
    const seen = new Set<string>();
    for (const item of current) {
      seen.add(item.key);
      const stored = store.get(item.key);
      if (stored && stored.sig === item.sig) continue;
      const rv = ++this.#rv;
      const object = item.render(rv);
      // A pod re-created under the same name is a new object: the old one was deleted.
      if (stored && kind === "pods" && get(stored.object, "metadata.uid") !== get(object, "metadata.uid")) {
        this.#record({ rv, kind, type: "DELETED", object: withRv(stored.object, rv) });
        const rv2 = ++this.#rv;
        const fresh = item.render(rv2);
        store.set(item.key, { key: item.key, rv: rv2, sig: item.sig, object: fresh });
        this.#record({ rv: rv2, kind, type: "ADDED", object: fresh });
        continue;
      }
      store.set(item.key, { key: item.key, rv, sig: item.sig, object });
      this.#record(stored ? { rv, kind, type: "MODIFIED", object, previous: stored.object } : { rv, kind, type: "ADDED", object });
    }
    for (const [key, stored] of store) {
      if (seen.has(key)) continue;
      store.delete(key);
      const rv = ++this.#rv;
      this.#record({ rv, kind, type: "DELETED", object: withRv(stored.object, rv) });
    }
  }

  #record(entry: HistoryEntry): void {
    this.#history.push(entry);
    if (this.#history.length > this.#historySize) this.#history.splice(0, this.#history.length - this.#historySize);
    for (const w of this.#watchers) if (w.kind === entry.kind) this.#deliver(w, entry);
  }

  /** Selector-aware delivery: entering the selection is ADDED, leaving it DELETED (as the API server does). */
  #deliver(w: Watcher, entry: HistoryEntry): void {
    if (w.closed) return;
    const now = w.matches(entry.object);
    const before = entry.previous === undefined ? now : w.matches(entry.previous);
    let type: string | null = entry.type;
    if (entry.type === "MODIFIED") type = before && now ? "MODIFIED" : now ? "ADDED" : before ? "DELETED" : null;
    else if (!now) type = null;
    if (type === null) return;
    w.res.write(`${JSON.stringify({ type, object: entry.object })}\n`);
  }

  // ---------------------------------------------------------------- HTTP

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const method = req.method ?? "GET";
    const path = url.pathname.replace(/\/+$/, "") || "/";

    if (
      this.#token !== null &&
      req.headers.authorization !== `Bearer ${this.#token}` &&
      path !== "/healthz" &&
      path !== "/readyz" &&
      path !== "/livez"
    ) {
      return this.#send(req, res, 401, status(401, "Unauthorized", "Unauthorized"));
    }
    const fault = this.#takeFault(method, path);
    if (fault) {
      const message = fault.message ?? defaultFaultMessage(fault.status, method, path);
      const code = fault.status;
      if (code === 429 || code === 503) res.setHeader("Retry-After", "0");
      return this.#send(req, res, code, status(code, REASONS[code] ?? "InternalError", message));
    }
    if (this.onRequest) await this.onRequest(method, path);
    let version: string;
    try {
      version = await this.#cluster.serverVersion();
    } catch (err) {
      return this.#send(req, res, 503, status(503, "ServiceUnavailable", (err as Error).message));
    }

    try {
      const result = await this.#route(method, path, url.searchParams, req, res, version);
      if (result === undefined) return;
      // kubectl asks for server-side printing (a Table); other clients get the objects.
      const accept = String(req.headers.accept ?? "");
      const table = typeof result === "object" && method === "GET" && /as=Table/.test(accept) ? asTable(result, this.#clock.now()) : null;
      this.#send(req, res, 200, table ?? result);
    } catch (err) {
      if (err instanceof HttpError)
        return this.#send(req, res, err.code, status(err.code, REASONS[err.code] ?? "InternalError", err.message, err.details));
      if (err instanceof SelectorError) return this.#send(req, res, 400, status(400, "BadRequest", err.message));
      if (isFencelineError(err, "TIMEOUT")) return this.#send(req, res, 503, status(503, "ServiceUnavailable", err.message));
      throw err;
    }
  }

  #takeFault(method: string, path: string): FaultRule | undefined {
    for (const rule of this.#faults) {
      if (rule.left <= 0) continue;
      if (rule.method && rule.method.toUpperCase() !== method) continue;
      if (rule.path !== undefined && !(typeof rule.path === "string" ? path.includes(rule.path) : rule.path.test(path))) continue;
      rule.left--;
      return rule;
    }
    return undefined;
  }

  #send(req: IncomingMessage, res: ServerResponse, code: number, body: unknown): void {
    this.requests.push({ at: this.#clock.now(), method: req.method ?? "GET", path: (req.url ?? "/").split("?")[0]!, status: code });
    if (this.requests.length > 10_000) this.requests.splice(0, this.requests.length - 10_000);
    const text = typeof body === "string" ? body : JSON.stringify(body);
    res.writeHead(code, {
      "Content-Type": typeof body === "string" ? "text/plain" : "application/json",
      "Content-Length": Buffer.byteLength(text),
    });
    res.end(text);
  }

  async #route(
    method: string,
    path: string,
    query: URLSearchParams,
    req: IncomingMessage,
    res: ServerResponse,
    version: string,
  ): Promise<Json | string | undefined> {
    if (path === "/healthz" || path === "/readyz" || path === "/livez") return "ok";
    if (path === "/version") {
      const [major, minor] = version.split(".");
      return {
        major: major ?? "1",
        minor: minor ?? "0",
        gitVersion: `v${version}.0`,
        gitCommit: "fenceline-sim",
        gitTreeState: "clean",
        buildDate: "2024-01-01T00:00:00Z",
        goVersion: "go1.22.0",
        compiler: "gc",
        platform: "linux/amd64",
      };
    }
    if (path === "/api")
      return {
        kind: "APIVersions",
        versions: ["v1"],
        serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: this.#url.replace(/^https?:\/\//, "") }],
      };
    if (path === "/apis") {
      return {
        kind: "APIGroupList",
        apiVersion: "v1",
        groups: [
          {
            name: "storage.k8s.io",
            versions: [{ groupVersion: "storage.k8s.io/v1", version: "v1" }],
            preferredVersion: { groupVersion: "storage.k8s.io/v1", version: "v1" },
          },
        ],
      };
    }
    if (path === "/api/v1") {
      return {
        kind: "APIResourceList",
        groupVersion: "v1",
        resources: [
          {
            name: "nodes",
            singularName: "node",
            namespaced: false,
            kind: "Node",
            verbs: ["get", "list", "watch", "patch"],
            shortNames: ["no"],
          },
          {
            name: "pods",
            singularName: "pod",
            namespaced: true,
            kind: "Pod",
            verbs: ["delete", "get", "list", "watch"],
            shortNames: ["po"],
          },
        ],
      };
    }
    if (path === "/apis/storage.k8s.io") {
      return {
        kind: "APIGroup",
        apiVersion: "v1",
        name: "storage.k8s.io",
        versions: [{ groupVersion: "storage.k8s.io/v1", version: "v1" }],
        preferredVersion: { groupVersion: "storage.k8s.io/v1", version: "v1" },
      };
    }
    if (path === "/apis/storage.k8s.io/v1") {
      return {
        kind: "APIResourceList",
        groupVersion: "storage.k8s.io/v1",
        resources: [
          {
            name: "volumeattachments",
            singularName: "volumeattachment",
            namespaced: false,
            kind: "VolumeAttachment",
            verbs: ["delete", "get", "list", "watch"],
          },
        ],
      };
    }

    let m: RegExpExecArray | null;
    if ((m = /^\/api\/v1\/nodes(?:\/([^/]+))?$/.exec(path))) {
      const name = m[1] && decodeURIComponent(m[1]);
      if (!name) return this.#collection("nodes", method, query, res, () => true);
      if (method === "GET") return this.#one("nodes", name);
      if (method === "PATCH") return this.#patchNode(name, req);
      throw new HttpError(405, `the server does not allow this method on the requested resource (${method} nodes/${name})`);
    }
    if (path === "/api/v1/pods") return this.#collection("pods", method, query, res, () => true);
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods(?:\/([^/]+))?$/.exec(path))) {
      const namespace = decodeURIComponent(m[1]!);
      const name = m[2] && decodeURIComponent(m[2]);
      if (!name) return this.#collection("pods", method, query, res, (o) => get(o, "metadata.namespace") === namespace);
      if (namespace !== NAMESPACE) throw new HttpError(404, `pods "${name}" not found`, { name, kind: "pods" });
      if (method === "GET") return this.#one("pods", name);
      if (method === "DELETE") return this.#deletePod(name, query, req);
      throw new HttpError(405, `the server does not allow this method on the requested resource (${method} pods/${name})`);
    }
    if ((m = /^\/apis\/storage\.k8s\.io\/v1\/volumeattachments(?:\/([^/]+))?$/.exec(path))) {
      const name = m[1] && decodeURIComponent(m[1]);
      if (!name) return this.#collection("volumeattachments", method, query, res, () => true);
      if (method === "GET") return this.#one("volumeattachments", name);
      if (method === "DELETE") return this.#deleteVolumeAttachment(name);
      throw new HttpError(405, `the server does not allow this method on the requested resource (${method} volumeattachments/${name})`);
    }
    throw new HttpError(404, `the server could not find the requested resource (${method} ${path})`);
  }

  #matcher(kind: ResourceKind, query: URLSearchParams, scope: (o: Json) => boolean): (o: Json) => boolean {
    const labels = parseLabelSelector(query.get("labelSelector"));
    const fields = parseFieldSelector(query.get("fieldSelector"), FIELDS[kind], kind);
    return (o) => {
      if (!scope(o)) return false;
      if (!labels((get(o, "metadata.labels") as Record<string, string> | undefined) ?? {})) return false;
      return fields((f) => {
        const v = get(o, f);
        return v === undefined ? (f === "spec.unschedulable" ? "false" : "") : String(v);
      });
    };
  }

  #collection(
    kind: ResourceKind,
    method: string,
    query: URLSearchParams,
    res: ServerResponse,
    scope: (o: Json) => boolean,
  ): Json | undefined {
    if (method !== "GET") throw new HttpError(405, `the server does not allow this method on the requested resource (${method} ${kind})`);
    this.sync();
    const matches = this.#matcher(kind, query, scope);
    const watch = query.get("watch");
    if (watch === "true" || watch === "1") {
      this.#watch(kind, matches, query, res);
      return undefined;
    }
    const items = [...this.#stores[kind].values()]
      .map((s) => s.object)
      .filter(matches)
      .map(({ kind: _k, apiVersion: _a, ...rest }) => rest);
    return { ...LIST_KIND[kind], metadata: { resourceVersion: String(this.#rv) }, items };
  }

  #watch(kind: ResourceKind, matches: (o: Json) => boolean, query: URLSearchParams, res: ServerResponse): void {
    res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked", "Cache-Control": "no-cache" });
    // Send the headers now, as an API server does: a client waits for them before it can cancel.
    res.flushHeaders();
    this.requests.push({ at: this.#clock.now(), method: "GET", path: `/watch/${kind}`, status: 200 });
    const watcher: Watcher = { kind, matches, res, closed: false };
    const from = query.get("resourceVersion");
    if (from === null || from === "" || from === "0") {
      for (const s of this.#stores[kind].values())
        if (matches(s.object)) res.write(`${JSON.stringify({ type: "ADDED", object: s.object })}\n`);
    } else {
      const rv = Number(from);
      const oldest = this.#history[0]?.rv ?? this.#rv + 1;
      if (!Number.isFinite(rv) || rv < oldest - 1) {
        res.end(
          `${JSON.stringify({ type: "ERROR", object: status(410, "Expired", `too old resource version: ${from} (${oldest - 1})`) })}\n`,
        );
        return;
      }
      for (const entry of this.#history) if (entry.kind === kind && entry.rv > rv) this.#deliver(watcher, entry);
    }
    this.#watchers.add(watcher);
    const close = () => {
      watcher.closed = true;
      this.#watchers.delete(watcher);
    };
    res.on("close", close);
    const timeout = Number(query.get("timeoutSeconds"));
    if (Number.isFinite(timeout) && timeout > 0) {
      const t = setTimeout(() => {
        close();
        res.end();
      }, timeout * 1000);
      t.unref?.();
      res.on("close", () => clearTimeout(t));
    }
  }

  #one(kind: ResourceKind, name: string): Json {
    this.sync();
    const stored = this.#stores[kind].get(name);
    if (!stored)
      throw new HttpError(404, `${kind}${kind === "volumeattachments" ? ".storage.k8s.io" : ""} "${name}" not found`, { name, kind });
    return stored.object;
  }

  async #body(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > 1_000_000) throw new HttpError(413, "request entity too large");
      chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString("utf8");
    if (text.trim() === "") return undefined;
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new HttpError(400, `invalid JSON body: ${(err as Error).message}`);
    }
  }

  async #patchNode(name: string, req: IncomingMessage): Promise<Json> {
    const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim();
    if (type !== "application/merge-patch+json" && type !== "application/strategic-merge-patch+json") {
      throw new HttpError(
        415,
        `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (got "${type}")`,
      );
    }
    const patch = await this.#body(req);
    if (patch === null || typeof patch !== "object" || Array.isArray(patch)) throw new HttpError(400, "the patch must be a JSON object");
    this.sync();
    const stored = this.#stores.nodes.get(name);
    const view = this.#cluster.node(name);
    if (!stored || !view) throw new HttpError(404, `nodes "${name}" not found`, { name, kind: "nodes" });
    const wantedRv = get(patch as Json, "metadata.resourceVersion");
    if (wantedRv !== undefined && wantedRv !== null && String(wantedRv) !== String(stored.rv)) {
      throw new HttpError(
        409,
        `Operation cannot be fulfilled on nodes "${name}": the object has been modified; please apply your changes to the latest version and try again`,
        { name, kind: "nodes" },
      );
    }
    const next = mergePatch(stored.object, patch) as Json;
    const overlay = this.#overlay(name);

    const labels = get(next, "metadata.labels") ?? {};
    if (typeof labels !== "object" || labels === null || Object.values(labels).some((v) => typeof v !== "string")) {
      throw new HttpError(422, `Node "${name}" is invalid: metadata.labels: label values must be strings`);
    }
    const unschedulable = get(next, "spec.unschedulable") === true;
    const taints = parseTaints(get(next, "spec.taints"), name);

    // Cordoning adds the unschedulable taint, as the node lifecycle controller does.
    const wanted = [...taints.filter((t) => !(t.key === UNSCHEDULABLE_TAINT.key && t.effect === UNSCHEDULABLE_TAINT.effect))];
    if (unschedulable) wanted.push(UNSCHEDULABLE_TAINT);
    const current = view.taints;
    for (const t of current) if (!wanted.some((w) => sameTaint(w, t))) await this.#cluster.removeTaint(name, t);
    for (const t of wanted) {
      const have = current.find((c) => sameTaint(c, t));
      if (!have || (have.value ?? "") !== (t.value ?? "")) await this.#cluster.addTaint(name, t);
    }
    overlay.labels = { ...(labels as Record<string, string>) };
    overlay.unschedulable = unschedulable;
    this.sync();
    return this.#stores.nodes.get(name)!.object;
  }

  async #deletePod(name: string, query: URLSearchParams, req: IncomingMessage): Promise<Json> {
    const body = ((await this.#body(req)) ?? {}) as Json;
    this.sync();
    const stored = this.#stores.pods.get(name);
    if (!stored) throw new HttpError(404, `pods "${name}" not found`, { name, kind: "pods" });
    const uid = get(body, "preconditions.uid");
    if (typeof uid === "string" && uid !== get(stored.object, "metadata.uid")) {
      throw new HttpError(
        409,
        `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${String(get(stored.object, "metadata.uid"))}`,
        { name, kind: "pods" },
      );
    }
    const fromQuery = query.get("gracePeriodSeconds");
    const grace =
      fromQuery !== null ? Number(fromQuery) : typeof body.gracePeriodSeconds === "number" ? body.gracePeriodSeconds : undefined;
    const object = stored.object;
    if (grace === 0) this.#cluster.forceDeletePod(name);
    else this.#cluster.requestPodDeletion(name);
    this.sync();
    return this.#stores.pods.get(name)?.object ?? object;
  }

  #deleteVolumeAttachment(name: string): Json {
    this.sync();
    const stored = this.#stores.volumeattachments.get(name);
    if (!stored)
      throw new HttpError(404, `volumeattachments.storage.k8s.io "${name}" not found`, {
        name,
        group: "storage.k8s.io",
        kind: "volumeattachments",
      });
    this.#cluster.deleteVolumeAttachment(
      String(get(stored.object, "spec.source.persistentVolumeName")),
      String(get(stored.object, "spec.nodeName")),
    );
    this.sync();
    return stored.object;
  }
}

/** Starts a simulated Kubernetes API server over the cluster model. */
export async function startKubernetesApiServer(options: KubernetesApiServerOptions): Promise<KubernetesApiServer> {
  return new KubernetesApiServer(options).start();
}

function withRv(object: Json, rv: number): Json {
  return { ...object, metadata: { ...(object.metadata as Json), resourceVersion: String(rv) } };
}

function sameTaint(a: { key: string; effect: string }, b: { key: string; effect: string }): boolean {
  return a.key === b.key && a.effect === b.effect;
}

const EFFECTS = new Set(["NoSchedule", "PreferNoSchedule", "NoExecute"]);

function parseTaints(value: unknown, node: string): Taint[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new HttpError(422, `Node "${node}" is invalid: spec.taints: must be a list`);
  const out: Taint[] = [];
  for (const [i, t] of value.entries()) {
    const taint = t as { key?: unknown; value?: unknown; effect?: unknown };
    if (typeof taint.key !== "string" || taint.key === "")
      throw new HttpError(422, `Node "${node}" is invalid: spec.taints[${i}].key: Required value`);
    if (typeof taint.effect !== "string" || !EFFECTS.has(taint.effect)) {
      throw new HttpError(
        422,
        `Node "${node}" is invalid: spec.taints[${i}].effect: Unsupported value: ${JSON.stringify(taint.effect)}: supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"`,
      );
    }
    if (taint.value !== undefined && taint.value !== null && typeof taint.value !== "string")
      throw new HttpError(422, `Node "${node}" is invalid: spec.taints[${i}].value: must be a string`);
    const parsed: Taint = {
      key: taint.key,
      effect: taint.effect as Taint["effect"],
      ...(typeof taint.value === "string" && taint.value !== "" ? { value: taint.value } : {}),
    };
    if (out.some((o) => sameTaint(o, parsed)))
      throw new HttpError(422, `Node "${node}" is invalid: spec.taints[${i}]: Duplicate value: "${parsed.key}:${parsed.effect}"`);
    out.push(parsed);
  }
  return out;
}

function defaultFaultMessage(code: number, method: string, path: string): string {
  const m = /\/(nodes|pods|volumeattachments)(?:\/([^/]+))?$/.exec(path);
  const resource = m?.[1] ?? path;
  const group = resource === "volumeattachments" ? "storage.k8s.io" : "";
  const verb = method === "GET" ? (m?.[2] ? "get" : "list") : method.toLowerCase();
  switch (code) {
    case 403:
      return `${resource}${m?.[2] ? ` "${m[2]}"` : ""} is forbidden: User "system:serviceaccount:fenceline:fenceline-engine" cannot ${verb} resource "${resource}" in API group "${group}"${resource === "pods" ? "" : " at the cluster scope"}`;
    case 409:
      return `Operation cannot be fulfilled on ${resource}${m?.[2] ? ` "${m[2]}"` : ""}: the object has been modified; please apply your changes to the latest version and try again`;
    case 429:
      return "Too many requests, please try again later.";
    case 503:
      return "the server is currently unable to handle the request";
    default:
      return `Internal error occurred: injected fault on ${method} ${path}`;
  }
}

const age = (created: unknown, now: number): string => {
  const s = Math.max(0, Math.floor((now - new Date(String(created)).getTime()) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
};

const column = (name: string, priority = 0, format = "") => ({ name, type: "string", format, description: name, priority });

/** What `kubectl get` prints for nodes and pods (server-side printing); null for other kinds. */
function asTable(result: Json, now: number): Json | null {
  const kind = String(result.kind ?? "");
  const items = kind.endsWith("List") ? ((result.items as Json[]) ?? []) : [result];
  const base = kind.replace(/List$/, "");
  const row = (o: Json, cells: unknown[]) => ({
    cells,
    object: { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: o.metadata },
  });
  const meta = { resourceVersion: String(get(result, "metadata.resourceVersion") ?? "") };
  if (base === "Node") {
    return {
      kind: "Table",
      apiVersion: "meta.k8s.io/v1",
      metadata: meta,
      columnDefinitions: [
        column("Name", 0, "name"),
        column("Status"),
        column("Roles"),
        column("Age"),
        column("Version"),
        column("Taints", 1),
        column("Boot ID", 1),
      ],
      rows: items.map((o) => {
        const ready = ((get(o, "status.conditions") as Json[] | undefined) ?? []).find((c) => c.type === "Ready");
        const status = [ready?.status === "True" ? "Ready" : "NotReady"];
        if (get(o, "spec.unschedulable") === true) status.push("SchedulingDisabled");
        const labels = (get(o, "metadata.labels") as Record<string, string> | undefined) ?? {};
        const roles = Object.keys(labels)
          .filter((k) => k.startsWith("node-role.kubernetes.io/"))
          .map((k) => k.slice("node-role.kubernetes.io/".length));
        const taints = ((get(o, "spec.taints") as Taint[] | undefined) ?? []).map(
          (t) => `${t.key}${t.value ? `=${t.value}` : ""}:${t.effect}`,
        );
        return row(o, [
          get(o, "metadata.name"),
          status.join(","),
          roles.join(",") || "<none>",
          age(get(o, "metadata.creationTimestamp"), now),
          get(o, "status.nodeInfo.kubeletVersion"),
          taints.join(",") || "<none>",
          get(o, "status.nodeInfo.bootID"),
        ]);
      }),
    };
  }
  if (base === "Pod") {
    return {
      kind: "Table",
      apiVersion: "meta.k8s.io/v1",
      metadata: meta,
      columnDefinitions: [
        column("Name", 0, "name"),
        column("Ready"),
        column("Status"),
        column("Restarts"),
        column("Age"),
        column("Node", 1),
        column("Volume", 1),
      ],
      rows: items.map((o) => {
        const running = get(o, "status.phase") === "Running";
        const terminating = get(o, "metadata.deletionTimestamp") !== undefined;
        return row(o, [
          get(o, "metadata.name"),
          ((get(o, "status.conditions") as Json[] | undefined) ?? []).some((c) => c.type === "Ready" && c.status === "True")
            ? "1/1"
            : "0/1",
          terminating ? "Terminating" : running ? "Running" : "Pending",
          "0",
          age(get(o, "metadata.creationTimestamp"), now),
          get(o, "spec.nodeName"),
          get(o, "spec.volumes.0.persistentVolumeClaim.claimName") ?? "<none>",
        ]);
      }),
    };
  }
  return null;
}
