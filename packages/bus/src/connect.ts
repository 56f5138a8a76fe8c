import { readFileSync } from "node:fs";
import { connect, credsAuthenticator, nkeyAuthenticator, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import { ErrorCode, FencelineError } from "@fenceline/contracts";
import { MIN_NATS_SERVER_VERSION, versionAtLeast } from "@fenceline/toolchain";
import type { Logger } from "./logger.js";

export type ConnectOptions = {
  /** Shown by the server in connection lists (`nats server report connections`). */
  name: string;
  /** How long the first connect may take. */
  timeoutMs?: number;
  /** Logs disconnects and reconnects. */
  log?: Logger;
  /**
   * Prefix of this connection's reply subjects (default NATS_INBOX_PREFIX, else `_INBOX`). A user
   * whose permissions only let it subscribe to its own inboxes (a node agent:
   * `_INBOX.agent.<node>.>`) must set it.
   */
  inboxPrefix?: string;
  /** The environment credentials and TLS files are read from (default process.env). */
  env?: Record<string, string | undefined>;
};

/**
 * Connects once, then reconnects forever. Only the first connect can fail: with a
 * FencelineError(NatsUnavailable) naming the URL (without its password), or
 * FencelineError(NatsServerTooOld) when the server is older than MIN_NATS_SERVER_VERSION (the
 * connection is closed; the message names both versions).
 *
 * Credentials (see docs/security.md): `nats://user:password@host:port` (percent-encode special
 * characters) or `nats://token@host:port` in the URL, else NATS_USER + NATS_PASSWORD,
 * NATS_TOKEN, NATS_NKEY (a file holding an nkey seed) or NATS_CREDS (a JWT .creds file) from
 * the environment. TLS: a `tls://` URL requires it; NATS_CA, NATS_CERT and NATS_KEY name PEM
 * files (a private CA; a client certificate for mutual TLS). NATS_INBOX_PREFIX sets the inbox
 * prefix when the caller does not (a user limited to its own inboxes, e.g. `_INBOX.serf`).
 */
export async function connectNats(url: string, options: ConnectOptions): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await connect(natsConnectionOptions(url, options));
  } catch (err) {
    throw new FencelineError(
      ErrorCode.NatsUnavailable,
      `cannot connect to NATS at ${redactUrl(url)}: ${(err as Error).message} (is nats-server running? set NATS_URL to point at it)`,
      { cause: err },
    );
  }
  const version = nc.info?.version ?? "unknown";
  if (!versionAtLeast(version, MIN_NATS_SERVER_VERSION)) {
    await nc.close().catch(() => {});
    throw new FencelineError(
      ErrorCode.NatsServerTooOld,
      `nats-server ${version} at ${redactUrl(url)} is too old: Fenceline needs nats-server ${MIN_NATS_SERVER_VERSION} or newer (see the README)`,
    );
  }
  if (options.log) void logStatus(nc, options.log);
  return nc;
}

/** What `connectNats` hands to nats.js: servers without credentials, plus auth and TLS options. */
export function natsConnectionOptions(url: string, options: ConnectOptions): NodeConnectionOptions {
  const env = options.env ?? process.env;
  const servers: string[] = [];
  let user: string | undefined;
  let pass: string | undefined;
  let token: string | undefined;
  let tlsScheme = false;
  for (const raw of url
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const parsed = parseServer(raw);
    servers.push(parsed.server);
    tlsScheme ||= parsed.tls;
    if (parsed.user !== undefined && user === undefined && token === undefined) {
      if (parsed.pass !== undefined) [user, pass] = [parsed.user, parsed.pass];
      else token = parsed.user;
    }
  }
  const out: NodeConnectionOptions = {
    servers,
    name: options.name,
    maxReconnectAttempts: -1,
    timeout: options.timeoutMs ?? 3_000,
    // No "async trace" Error built ahead of every request: it captures a stack per JetStream
    // publish and cost the engine about a quarter of its CPU (docs/scale.md). Errors keep
    // their messages; their stacks start in the client library.
    noAsyncTraces: true,
    ...(options.inboxPrefix || env.NATS_INBOX_PREFIX ? { inboxPrefix: options.inboxPrefix || env.NATS_INBOX_PREFIX } : {}),
  };
  if (user !== undefined) Object.assign(out, { user, pass });
  else if (token !== undefined) out.token = token;
  else if (env.NATS_USER) Object.assign(out, { user: env.NATS_USER, pass: env.NATS_PASSWORD ?? "" });
  else if (env.NATS_TOKEN) out.token = env.NATS_TOKEN;
  else if (env.NATS_NKEY) out.authenticator = nkeyAuthenticator(new TextEncoder().encode(readFileSync(env.NATS_NKEY, "utf8").trim()));
  else if (env.NATS_CREDS) out.authenticator = credsAuthenticator(readFileSync(env.NATS_CREDS));

  if (tlsScheme || env.NATS_CA || env.NATS_CERT || env.NATS_KEY) {
    out.tls = {
      ...(env.NATS_CA ? { caFile: env.NATS_CA } : {}),
      ...(env.NATS_CERT ? { certFile: env.NATS_CERT } : {}),
      ...(env.NATS_KEY ? { keyFile: env.NATS_KEY } : {}),
    };
  }
  return out;
}

function parseServer(raw: string): { server: string; tls: boolean; user?: string; pass?: string } {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(raw)?.[1]?.toLowerCase();
  const tls = scheme === "tls";
  const at = raw.lastIndexOf("@");
  if (at === -1) return { server: raw, tls };
  const start = scheme ? scheme.length + 3 : 0;
  const userinfo = raw.slice(start, at);
  const server = raw.slice(0, start) + raw.slice(at + 1);
  const colon = userinfo.indexOf(":");
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  return colon === -1
    ? { server, tls, user: decode(userinfo) }
    : { server, tls, user: decode(userinfo.slice(0, colon)), pass: decode(userinfo.slice(colon + 1)) };
}

/** The URL with any password (or token) replaced by `***`, for logs and error messages. */
export function redactUrl(url: string): string {
  return url
    .split(",")
    .map((raw) => {
      const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(raw.trim())?.[0] ?? "";
      const at = raw.lastIndexOf("@");
      if (at === -1) return raw;
      const start = raw.indexOf(scheme) + scheme.length;
      const userinfo = raw.slice(start, at);
      const colon = userinfo.indexOf(":");
      return `${raw.slice(0, start)}${colon === -1 ? "***" : `${userinfo.slice(0, colon)}:***`}${raw.slice(at)}`;
    })
    .join(",");
}

async function logStatus(nc: NatsConnection, log: Logger): Promise<void> {
  for await (const s of nc.status()) {
    if (s.type === "disconnect" || s.type === "error") log.warn({ nats: s }, `nats ${s.type}`);
    else if (s.type === "reconnect") log.info({ nats: s }, "nats reconnected");
  }
}
