import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { AuditRecord } from "@fenceline/contracts";
import type { ChartExport, NodeRow, Timeline } from "./wire.js";

/**
 * The visualizer's HTTP server: the static page (built by Vite into dist/web) and a small JSON
 * API over a `VisualizerSource` (the CLI provides one backed by NATS). Only node:http; no
 * dependency, nothing fetched from the internet.
 *
 *   GET /                          the page
 *   GET /api/info                  policy version, NATS address, server time
 *   GET /api/statechart            the exported machine (states, transitions, guards)
 *   GET /api/snapshot              every node now (FL_NODES)
 *   GET /api/audit?since=SEQ       audit records with a sequence above SEQ, in order
 *   GET /api/events?since=SEQ      server-sent events: the same, then every new record live
 *   GET /api/nodes/NAME/timeline   a node's transitions with their events, commands and results
 *   GET /metrics                   Prometheus metrics (when the source has them)
 */

export type { NodeRow } from "./wire.js";

export type VisualizerSource = {
  /** The machine to draw (`exportMachine(policy)`). */
  statechart(): ChartExport;
  /** The audit history so far. */
  loadAudit(): Promise<AuditRecord[]>;
  /** New audit records as they are written; returns an unsubscribe function. */
  subscribeAudit(onRecord: (record: AuditRecord) => void): () => void;
  snapshot(): Promise<NodeRow[]>;
  /** A node's timeline; `records` are that node's audit records known to the server. */
  timeline(node: string, records: AuditRecord[]): Promise<Timeline>;
  metrics?(): string | Promise<string>;
  info?(): Record<string, unknown>;
};

export type VisualizerServer = {
  url: string;
  port: number;
  /** Audit records held (for tests). */
  records(): number;
  close(): Promise<void>;
};

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".map": "application/json",
};

/** dist/web next to this file's package (src/ when run from sources, dist/ once built). */
export const DEFAULT_WEB_ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "..", "dist", "web");

/** Audit records by sequence, in order; appends are O(1), a late one is inserted in place. */
class AuditLog {
  private readonly bySeq = new Map<number, AuditRecord>();
  readonly list: AuditRecord[] = [];
  add(r: AuditRecord): boolean {
    if (this.bySeq.has(r.seq)) return false;
    this.bySeq.set(r.seq, r);
    const last = this.list.at(-1);
    if (!last || last.seq < r.seq) this.list.push(r);
    else {
      let i = this.list.length - 1;
      while (i > 0 && this.list[i - 1]!.seq > r.seq) i--;
      this.list.splice(i, 0, r);
    }
    return true;
  }
  since(seq: number): AuditRecord[] {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.list[mid]!.seq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return this.list.slice(lo);
  }
}

export async function startVisualizerServer(options: {
  source: VisualizerSource;
  port?: number;
  host?: string;
  webRoot?: string;
  title?: string;
}): Promise<VisualizerServer> {
  const { source } = options;
  const webRoot = options.webRoot ?? DEFAULT_WEB_ROOT;
  const log = new AuditLog();
  const clients = new Set<ServerResponse>();
  const startedAt = Date.now();

  const push = (r: AuditRecord) => {
    if (!log.add(r)) return;
    const frame = `id: ${r.seq}\nevent: audit\ndata: ${JSON.stringify(r)}\n\n`;
    for (const c of clients) c.write(frame);
  };
  // Subscribe first, then load the history: nothing written in between is lost (duplicates are dropped).
  const unsubscribe = source.subscribeAudit(push);
  for (const r of await source.loadAudit()) log.add(r);

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" }).end(JSON.stringify(body));
  };
  const sinceOf = (url: URL) => {
    const raw = url.searchParams.get("since");
    const n = raw === null ? 0 : Number(raw);
    return Number.isFinite(n) ? n : 0;
  };

  const serveFile = (res: ServerResponse, path: string) => {
    const rel = normalize(decodeURIComponent(path)).replace(/^([/\\])+/, "");
    const file = resolve(webRoot, rel === "" ? "index.html" : rel);
    if (!file.startsWith(webRoot + sep) && file !== webRoot) return json(res, 403, { error: "forbidden" });
    const target = existsSync(file) && statSync(file).isFile() ? file : join(webRoot, "index.html");
    if (!existsSync(target)) {
      res
        .writeHead(503, { "content-type": "text/plain; charset=utf-8" })
        .end(`the visualizer page is not built (${webRoot} is missing): run pnpm exec turbo run build --filter=@fenceline/visualizer\n`);
      return;
    }
    const immutable = target.includes(`${sep}assets${sep}`);
    res.writeHead(200, {
      "content-type": TYPES[extname(target)] ?? "application/octet-stream",
      "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
    });
    createReadStream(target).pipe(res);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname;
    if (req.method !== "GET" && req.method !== "HEAD") return json(res, 405, { error: "only GET" });
    if (path === "/api/info") {
      return json(res, 200, {
        title: options.title ?? "Fenceline",
        startedAt,
        now: Date.now(),
        records: log.list.length,
        ...(source.info?.() ?? {}),
      });
    }
    if (path === "/api/statechart") return json(res, 200, source.statechart());
    if (path === "/api/snapshot") return json(res, 200, await source.snapshot());
    if (path === "/api/audit") {
      const limit = Number(url.searchParams.get("limit") ?? Infinity);
      const records = log.since(sinceOf(url));
      return json(res, 200, Number.isFinite(limit) && limit >= 0 ? records.slice(0, limit) : records);
    }
    if (path === "/api/events") {
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-store",
        connection: "keep-alive",
        "x-accel-buffering": "no",
      });
      const lastId = Number(req.headers["last-event-id"] ?? NaN);
      const since = Number.isFinite(lastId) ? lastId : sinceOf(url);
      res.write("retry: 2000\n\n");
      for (const r of log.since(since)) res.write(`id: ${r.seq}\nevent: audit\ndata: ${JSON.stringify(r)}\n\n`);
      clients.add(res);
      const ping = setInterval(() => res.write(`: ping ${Date.now()}\n\n`), 15_000);
      req.on("close", () => {
        clearInterval(ping);
        clients.delete(res);
      });
      return;
    }
    const timeline = /^\/api\/nodes\/([^/]+)\/timeline$/.exec(path);
    if (timeline) {
      const node = decodeURIComponent(timeline[1]!);
      const records = log.list.filter((r) => r.node === node);
      if (records.length === 0) return json(res, 404, { error: `no audit records for node "${node}"` });
      return json(res, 200, await source.timeline(node, records));
    }
    if (path === "/metrics") {
      if (!source.metrics) return json(res, 404, { error: "no metrics here" });
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(await source.metrics());
      return;
    }
    if (path === "/healthz") return json(res, 200, { ok: true });
    if (path.startsWith("/api/")) return json(res, 404, { error: `no such endpoint ${path}` });
    serveFile(res, path);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) json(res, 500, { error: (err as Error).message });
      else res.end();
    });
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(options.port ?? 0, host, () => ok());
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}/`,
    port,
    records: () => log.list.length,
    async close() {
      unsubscribe();
      for (const c of clients) c.end();
      clients.clear();
      await new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      });
    },
  };
}
