import { promises as fs } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { AgentTiming, Duration, NodeName } from "@fenceline/contracts";
import { BOOT_ID_PATH } from "./boot-identity.js";
import type { ServiceChecksumSpec } from "./checksums.js";

/**
 * The agent's configuration file (JSON), the same on every node (docs/agent.md). Durations take
 * "5s"-style strings or milliseconds.
 *
 * {
 *   "node": "worker-1",                        default: the hostname, lowercased
 *   "nats": { "url": "nats://10.0.0.1:4222" },  default nats://127.0.0.1:4222
 *   "peerListen": { "host": "0.0.0.0", "port": 9797 },
 *   "peerAdvertiseUrl": "http://10.0.0.11:9797",  default: from peerListen when its host is an address
 *   "peers": [{ "node": "worker-2", "url": "http://10.0.0.12:9797" }],   an optional address book
 *   "tls": { "keyFile": "...", "certFile": "...", "caFile": "..." },   mTLS between agents
 *   "watchdog": { "path": "/dev/watchdog", "sysfsDir": "...", "fallbackRebootCommand": null },
 *   "heartbeatInterval": "1s",
 *   "timing": { "controlPlaneTimeoutMs": "5s", "peerRoundMs": "2s", "watchdogTimeoutMs": "10s", "marginMs": "5s" },
 *   "services": { "kubelet": { "files": ["/etc/kubernetes/kubelet.conf"], "commands": ["kubelet --version"] } },
 *   "checksumInterval": "60s", "checksumCommandTimeout": "5s",
 *   "hostGroup": "workers", "controlPlane": false,
 *   "stateDir": "/var/lib/fenceline/agent",    incarnation, self-fence, membership and contact files
 *   "logLevel": "info"
 * }
 *
 * The fleet (its members, their addresses, its size) is learned from the control plane, never
 * configured: `fleetSize` is refused, and `peers` only gives addresses. `timing` should be the
 * policy's `agent` section: the engine checks it (the contract in every heartbeat). The watchdog
 * timeout is `timing.watchdogTimeoutMs`; the device's own timeout is set by its kernel module and
 * checked against it at start.
 */
export interface AgentConfig {
  node: string;
  nats: { url: string };
  peerListen: { host: string; port: number };
  /** The URL peers reach this agent at (sent in heartbeats); undefined when it cannot be derived. */
  peerAdvertiseUrl?: string;
  /** Address book: the URL to use for a member instead of the one it advertised. */
  peers: Array<{ node: string; url: string }>;
  tls?: { keyFile: string; certFile: string; caFile: string };
  watchdog: { path: string; sysfsDir?: string; fallbackRebootCommand: string[] | null };
  heartbeatIntervalMs: number;
  timing: AgentTiming;
  services: Record<string, ServiceChecksumSpec>;
  checksumIntervalMs: number;
  checksumCommandTimeoutMs: number;
  hostGroup?: string;
  controlPlane?: boolean;
  incarnationFile: string;
  selfFenceFile: string;
  /** The membership view learned from the control plane, kept durably across restarts and reboots. */
  membershipFile: string;
  /** Last control-plane contact of this boot, read back by a restarted agent. */
  contactFile: string;
  bootIdFile: string;
  logLevel: string;
}

export class AgentConfigError extends Error {
  override readonly name = "AgentConfigError";
  constructor(
    readonly source: string,
    readonly issues: readonly string[],
  ) {
    super(`invalid agent config ${source}: ${issues.join("; ")}`);
  }
}

export async function loadAgentConfig(path: string): Promise<AgentConfig> {
  let text: string;
  try {
    text = await fs.readFile(path, "utf8");
  } catch (err) {
    throw new AgentConfigError(path, [`cannot read it: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new AgentConfigError(path, [`not JSON: ${(err as Error).message}`]);
  }
  return parseAgentConfig(json, { source: path });
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** A strict object whose unknown keys are reported one by one, with the keys it knows. */
function strict<T extends z.ZodRawShape>(shape: T) {
  const known = Object.keys(shape).join(", ");
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === "unrecognized_keys"
        ? `unknown key (known: ${known})`
        : issue.code === "invalid_type"
          ? "must be an object"
          : undefined,
  });
}

const text = (max = 4096) =>
  z
    .string({ error: `must be a non-empty string of at most ${max} characters` })
    .min(1, `must be a non-empty string of at most ${max} characters`)
    .max(max, `must be a non-empty string of at most ${max} characters`);
const texts = (minItems = 0) => z.array(text(), { error: "must be an array" }).min(minItems, `needs at least ${minItems} item(s)`);
const url = (protocols: readonly string[]) =>
  text().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    `must be a ${protocols.join(" or ")} URL`,
  );
const duration = (min: number) =>
  z.unknown().transform((value, ctx) => {
    const parsed = Duration.safeParse(value);
    if (parsed.success && parsed.data >= min) return parsed.data;
    ctx.addIssue({ code: "custom", message: `must be a duration of at least ${min}ms, like "500ms", "5s" or 5000` });
    return z.NEVER;
  });
const nodeName = NodeName;

/** The file as written: every key, its type and its default (the order of the doc comment above). */
const AgentConfigFile = strict({
  node: nodeName.optional(),
  nats: strict({ url: url(["nats:", "tls:"]).default("nats://127.0.0.1:4222") }).prefault({}),
  peerListen: strict({
    host: text().default("0.0.0.0"),
    port: z
      .number({ error: "must be a port number (0 to 65535)" })
      .int("must be a port number (0 to 65535)")
      .min(0, "must be a port number (0 to 65535)")
      .max(65535, "must be a port number (0 to 65535)")
      .default(9797),
  }).prefault({}),
  peerAdvertiseUrl: url(["http:", "https:"]).optional(),
  peers: z.array(strict({ node: nodeName, url: url(["http:", "https:"]) }), { error: "must be an array" }).default([]),
  tls: strict({ keyFile: text(), certFile: text(), caFile: text() }).optional(),
  watchdog: strict({
    path: text().default("/dev/watchdog"),
    sysfsDir: text().optional(),
    // Off unless asked for: a timer in this process dies with it (contract kind "software").
    fallbackRebootCommand: texts(1).nullable().default(null),
  }).prefault({}),
  heartbeatInterval: duration(1).prefault("1s"),
  // The policy's agent section (AgentTiming), with this file's messages for a bad duration.
  timing: strict(
    Object.fromEntries(Object.keys(AgentTiming.shape).map((key) => [key, duration(0).optional()])) as Record<
      keyof AgentTiming,
      z.ZodOptional<ReturnType<typeof duration>>
    >,
  )
    .prefault({})
    .transform((timing) => AgentTiming.parse(Object.fromEntries(Object.entries(timing).filter(([, v]) => v !== undefined)))),
  services: z
    .record(text(128), strict({ files: texts().optional(), commands: texts().optional() }), { error: "must be an object" })
    .default({}),
  checksumInterval: duration(1).prefault("60s"),
  checksumCommandTimeout: duration(1).prefault("5s"),
  hostGroup: text(128).optional(),
  controlPlane: z.boolean({ error: "must be true or false" }).optional(),
  stateDir: text().default("/var/lib/fenceline/agent"),
  incarnationFile: text().optional(),
  selfFenceFile: text().optional(),
  membershipFile: text().optional(),
  contactFile: text().optional(),
  bootIdFile: text().default(BOOT_ID_PATH),
  logLevel: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(", ")}` }).default("info"),
});
type AgentConfigFile = z.infer<typeof AgentConfigFile>;
type Field = keyof typeof AgentConfigFile.shape;

/** Every zod issue as "path: message"; an unknown key is one line per key. */
function issueLines(issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[] = []): string[] {
  const path = (keys: readonly PropertyKey[]) =>
    keys.reduce<string>((out, key) => (typeof key === "number" ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)), "") ||
    "(root)";
  return issues.flatMap((issue) => {
    const at = [...prefix, ...issue.path];
    if (issue.code === "unrecognized_keys") return issue.keys.map((key) => `${path([...at, key])}: ${issue.message}`);
    return [`${path(at)}: ${issue.message}`];
  });
}

/**
 * What the file says about things that involve more than one key, checked on every field that is
 * valid (a field that is not counts as its default here, its own problem reported by the schema),
 * so that every problem is reported at once.
 */
function relations(raw: Record<string, unknown>, value: AgentConfigFile, node: string): string[] {
  const out: string[] = [];
  const entries = Array.isArray(raw.peers) ? raw.peers : [];
  const seen = new Set<string>();
  entries.forEach((entry, i) => {
    const peer = NodeName.safeParse((entry as { node?: unknown } | null)?.node);
    if (!peer.success) return;
    if (peer.data === node) out.push(`peers[${i}].node: is this node itself`);
    else if (seen.has(peer.data)) out.push(`peers[${i}].node: "${peer.data}" is listed twice`);
    seen.add(peer.data);
  });
  if (value.tls && value.peers.some((p) => p.url.startsWith("http:"))) out.push("peers: use https:// URLs when tls is set");
  if (value.tls && value.peerAdvertiseUrl?.startsWith("http:")) out.push("peerAdvertiseUrl: use an https:// URL when tls is set");
  if (value.timing.controlPlaneTimeoutMs <= 3 * value.heartbeatInterval) {
    out.push(
      `timing.controlPlaneTimeoutMs: must be more than 3 heartbeat intervals (${3 * value.heartbeatInterval}ms) so that an outage is not mistaken for a partition`,
    );
  }
  return out;
}

/** Validates (zod, every problem with its path, unknown keys included) and fills defaults; throws AgentConfigError. */
export function parseAgentConfig(raw: unknown, options: { source?: string; hostname?: string } = {}): AgentConfig {
  const source = options.source ?? "(inline)";
  const refused: string[] = [];
  if (typeof raw === "object" && raw !== null && !Array.isArray(raw) && "fleetSize" in raw) {
    refused.push(
      "fleetSize: is no longer supported: the fleet and its size are learned from the control plane (docs/agent.md, Membership); remove it",
    );
    raw = Object.fromEntries(Object.entries(raw).filter(([key]) => key !== "fleetSize"));
  }
  const parsed = AgentConfigFile.safeParse(raw);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new AgentConfigError(source, issueLines(parsed.error?.issues ?? []));
  const record = raw as Record<string, unknown>;
  const issues = [...refused, ...(parsed.success ? [] : issueLines(parsed.error.issues))];

  // For the relations: each field as parsed, or its default when it is not valid.
  const fields = AgentConfigFile.shape;
  const value = parsed.success
    ? parsed.data
    : (Object.fromEntries(
        (Object.keys(fields) as Field[]).map((key) => {
          const one = fields[key].safeParse(record[key]);
          return [key, one.success ? one.data : fields[key].safeParse(undefined).data];
        }),
      ) as AgentConfigFile);

  const defaultNode = (options.hostname ?? hostname()).toLowerCase();
  let node = value.node;
  if (record.node === undefined) {
    const fromHost = NodeName.safeParse(defaultNode);
    if (fromHost.success) node = fromHost.data;
    else issues.push(`node: ${fromHost.error.issues[0]?.message ?? "invalid node name"} (the hostname; set "node")`);
  }
  issues.push(...relations(record, value, node ?? defaultNode));
  if (issues.length > 0) throw new AgentConfigError(source, issues);

  const config: AgentConfig = {
    node: node ?? defaultNode,
    nats: value.nats,
    peerListen: value.peerListen,
    peers: value.peers,
    watchdog: { path: value.watchdog.path, fallbackRebootCommand: value.watchdog.fallbackRebootCommand },
    heartbeatIntervalMs: value.heartbeatInterval,
    timing: value.timing,
    services: value.services as Record<string, ServiceChecksumSpec>,
    checksumIntervalMs: value.checksumInterval,
    checksumCommandTimeoutMs: value.checksumCommandTimeout,
    incarnationFile: value.incarnationFile ?? join(value.stateDir, "incarnation"),
    selfFenceFile: value.selfFenceFile ?? join(value.stateDir, "self-fence.json"),
    membershipFile: value.membershipFile ?? join(value.stateDir, "membership.json"),
    contactFile: value.contactFile ?? join(value.stateDir, "last-contact.json"),
    bootIdFile: value.bootIdFile,
    logLevel: value.logLevel,
  };
  if (value.tls) config.tls = value.tls;
  if (value.watchdog.sysfsDir !== undefined) config.watchdog.sysfsDir = value.watchdog.sysfsDir;
  const peerAdvertiseUrl = value.peerAdvertiseUrl ?? advertisedFrom(value.peerListen, value.tls !== undefined);
  if (peerAdvertiseUrl !== undefined) config.peerAdvertiseUrl = peerAdvertiseUrl;
  if (value.hostGroup !== undefined) config.hostGroup = value.hostGroup;
  if (value.controlPlane !== undefined) config.controlPlane = value.controlPlane;
  return config;
}

const WILDCARD_HOSTS = ["0.0.0.0", "::", "[::]", ""];

/** The URL peers reach this agent at when peerListen names an address (none for a wildcard). */
function advertisedFrom(listen: { host: string; port: number }, tls: boolean): string | undefined {
  if (WILDCARD_HOSTS.includes(listen.host)) return undefined;
  const host = listen.host.includes(":") && !listen.host.startsWith("[") ? `[${listen.host}]` : listen.host;
  return `${tls ? "https" : "http"}://${host}:${listen.port}`;
}
