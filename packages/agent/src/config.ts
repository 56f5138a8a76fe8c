import { promises as fs } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
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

const TOP_LEVEL_KEYS = [
  "node", "nats", "peerListen", "peerAdvertiseUrl", "peers", "tls", "watchdog", "heartbeatInterval", "timing", "services",
  "checksumInterval", "checksumCommandTimeout", "hostGroup", "controlPlane", "stateDir", "incarnationFile",
  "selfFenceFile", "membershipFile", "contactFile", "bootIdFile", "logLevel",
];
const WILDCARD_HOSTS = ["0.0.0.0", "::", "[::]", ""];
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/** Validates and fills defaults; throws AgentConfigError listing every problem. */
export function parseAgentConfig(raw: unknown, options: { source?: string; hostname?: string } = {}): AgentConfig {
  const v = new Validator();
  if (typeof raw === "object" && raw !== null && "fleetSize" in raw) {
    v.issue("fleetSize", "is no longer supported: the fleet and its size are learned from the control plane (docs/agent.md, Membership); remove it");
    raw = Object.fromEntries(Object.entries(raw).filter(([key]) => key !== "fleetSize"));
  }
  const root = v.object(raw, "", TOP_LEVEL_KEYS) ?? {};

  const defaultNode = (options.hostname ?? hostname()).toLowerCase();
  const node = v.nodeName(root.node ?? defaultNode, "node", root.node === undefined ? " (the hostname; set \"node\")" : "");

  const nats = v.object(root.nats ?? {}, "nats", ["url"]) ?? {};
  const natsUrl = v.url(nats.url ?? "nats://127.0.0.1:4222", "nats.url", ["nats:", "tls:"]);

  const listen = v.object(root.peerListen ?? {}, "peerListen", ["host", "port"]) ?? {};
  const peerListen = { host: v.string(listen.host ?? "0.0.0.0", "peerListen.host"), port: v.port(listen.port ?? 9797, "peerListen.port") };

  const peers: AgentConfig["peers"] = [];
  for (const [i, entry] of (v.array(root.peers ?? [], "peers") ?? []).entries()) {
    const peer = v.object(entry, `peers[${i}]`, ["node", "url"]);
    if (!peer) continue;
    const peerNode = v.nodeName(peer.node, `peers[${i}].node`);
    const url = v.url(peer.url, `peers[${i}].url`, ["http:", "https:"]);
    if (peerNode === node) v.issue(`peers[${i}].node`, "is this node itself");
    else if (peers.some((p) => p.node === peerNode)) v.issue(`peers[${i}].node`, `"${peerNode}" is listed twice`);
    peers.push({ node: peerNode, url });
  }

  let tls: AgentConfig["tls"];
  if (root.tls !== undefined) {
    const t = v.object(root.tls, "tls", ["keyFile", "certFile", "caFile"]) ?? {};
    tls = { keyFile: v.string(t.keyFile, "tls.keyFile"), certFile: v.string(t.certFile, "tls.certFile"), caFile: v.string(t.caFile, "tls.caFile") };
    if (peers.some((p) => p.url.startsWith("http:"))) v.issue("peers", "use https:// URLs when tls is set");
  }

  const scheme = tls ? "https" : "http";
  const listenHost = peerListen.host.includes(":") && !peerListen.host.startsWith("[") ? `[${peerListen.host}]` : peerListen.host;
  const peerAdvertiseUrl =
    root.peerAdvertiseUrl !== undefined
      ? v.url(root.peerAdvertiseUrl, "peerAdvertiseUrl", ["http:", "https:"])
      : WILDCARD_HOSTS.includes(peerListen.host)
        ? undefined
        : `${scheme}://${listenHost}:${peerListen.port}`;
  if (tls && peerAdvertiseUrl?.startsWith("http:")) v.issue("peerAdvertiseUrl", "use an https:// URL when tls is set");

  const wd = v.object(root.watchdog ?? {}, "watchdog", ["path", "sysfsDir", "fallbackRebootCommand"]) ?? {};
  const watchdog: AgentConfig["watchdog"] = {
    path: v.string(wd.path ?? "/dev/watchdog", "watchdog.path"),
    // Off unless asked for: a timer in this process dies with it (contract kind "software").
    fallbackRebootCommand:
      wd.fallbackRebootCommand === null || wd.fallbackRebootCommand === undefined ? null : v.stringArray(wd.fallbackRebootCommand, "watchdog.fallbackRebootCommand", 1),
  };
  if (wd.sysfsDir !== undefined) watchdog.sysfsDir = v.string(wd.sysfsDir, "watchdog.sysfsDir");

  const timingResult = AgentTiming.safeParse(root.timing ?? {});
  if (!timingResult.success) for (const issue of timingResult.error.issues) v.issue(["timing", ...issue.path].join("."), issue.message);
  const timing = timingResult.success ? timingResult.data : AgentTiming.parse({});

  const services: AgentConfig["services"] = {};
  const rawServices = v.object(root.services ?? {}, "services") ?? {};
  for (const [name, spec] of Object.entries(rawServices)) {
    if (name.length === 0 || name.length > 128) v.issue(`services`, `service name "${name.slice(0, 20)}" must be 1 to 128 characters`);
    const s = v.object(spec, `services.${name}`, ["files", "commands"]);
    if (!s) continue;
    const service: ServiceChecksumSpec = {};
    if (s.files !== undefined) service.files = v.stringArray(s.files, `services.${name}.files`);
    if (s.commands !== undefined) service.commands = v.stringArray(s.commands, `services.${name}.commands`);
    services[name] = service;
  }

  const stateDir = v.string(root.stateDir ?? "/var/lib/fenceline/agent", "stateDir");
  const config: AgentConfig = {
    node,
    nats: { url: natsUrl },
    peerListen,
    peers,
    watchdog,
    heartbeatIntervalMs: v.duration(root.heartbeatInterval ?? "1s", "heartbeatInterval", 1),
    timing,
    services,
    checksumIntervalMs: v.duration(root.checksumInterval ?? "60s", "checksumInterval", 1),
    checksumCommandTimeoutMs: v.duration(root.checksumCommandTimeout ?? "5s", "checksumCommandTimeout", 1),
    incarnationFile: v.string(root.incarnationFile ?? join(stateDir, "incarnation"), "incarnationFile"),
    selfFenceFile: v.string(root.selfFenceFile ?? join(stateDir, "self-fence.json"), "selfFenceFile"),
    membershipFile: v.string(root.membershipFile ?? join(stateDir, "membership.json"), "membershipFile"),
    contactFile: v.string(root.contactFile ?? join(stateDir, "last-contact.json"), "contactFile"),
    bootIdFile: v.string(root.bootIdFile ?? BOOT_ID_PATH, "bootIdFile"),
    logLevel: v.oneOf(root.logLevel ?? "info", "logLevel", LOG_LEVELS),
  };
  if (tls) config.tls = tls;
  if (peerAdvertiseUrl !== undefined) config.peerAdvertiseUrl = peerAdvertiseUrl;
  if (root.hostGroup !== undefined) config.hostGroup = v.string(root.hostGroup, "hostGroup", 128);
  if (root.controlPlane !== undefined) config.controlPlane = v.boolean(root.controlPlane, "controlPlane");
  if (config.timing.controlPlaneTimeoutMs <= 3 * config.heartbeatIntervalMs) {
    v.issue("timing.controlPlaneTimeoutMs", `must be more than 3 heartbeat intervals (${3 * config.heartbeatIntervalMs}ms) so that an outage is not mistaken for a partition`);
  }
  if (v.issues.length > 0) throw new AgentConfigError(options.source ?? "(inline)", v.issues);
  return config;
}

/** Collects every problem with its path instead of stopping at the first. */
class Validator {
  readonly issues: string[] = [];

  issue(path: string, message: string): void {
    this.issues.push(`${path || "(root)"}: ${message}`);
  }

  object(value: unknown, path: string, keys?: readonly string[]): Record<string, unknown> | undefined {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      this.issue(path, "must be an object");
      return undefined;
    }
    const record = value as Record<string, unknown>;
    if (keys) for (const key of Object.keys(record)) if (!keys.includes(key)) this.issue(path ? `${path}.${key}` : key, `unknown key (known: ${keys.join(", ")})`);
    return record;
  }

  array(value: unknown, path: string): unknown[] | undefined {
    if (Array.isArray(value)) return value;
    this.issue(path, "must be an array");
    return undefined;
  }

  string(value: unknown, path: string, maxLength = 4096): string {
    if (typeof value === "string" && value.length > 0 && value.length <= maxLength) return value;
    this.issue(path, `must be a non-empty string of at most ${maxLength} characters`);
    return "";
  }

  stringArray(value: unknown, path: string, minItems = 0): string[] {
    const items = this.array(value, path) ?? [];
    if (items.length < minItems) this.issue(path, `needs at least ${minItems} item(s)`);
    return items.map((item, i) => this.string(item, `${path}[${i}]`));
  }

  boolean(value: unknown, path: string): boolean {
    if (typeof value === "boolean") return value;
    this.issue(path, "must be true or false");
    return false;
  }

  port(value: unknown, path: string): number {
    if (typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 65535) return value;
    this.issue(path, "must be a port number (0 to 65535)");
    return 0;
  }

  duration(value: unknown, path: string, min: number): number {
    const parsed = Duration.safeParse(value);
    if (parsed.success && parsed.data >= min) return parsed.data;
    this.issue(path, `must be a duration of at least ${min}ms, like "500ms", "5s" or 5000`);
    return min;
  }

  nodeName(value: unknown, path: string, hint = ""): string {
    const parsed = NodeName.safeParse(value);
    if (parsed.success) return parsed.data;
    this.issue(path, `${parsed.error.issues[0]?.message ?? "invalid node name"}${hint}`);
    return typeof value === "string" ? value : "";
  }

  url(value: unknown, path: string, protocols: readonly string[]): string {
    const text = this.string(value, path);
    try {
      if (protocols.includes(new URL(text).protocol)) return text;
    } catch {
      // reported below
    }
    if (text) this.issue(path, `must be a ${protocols.join(" or ")} URL`);
    return text;
  }

  oneOf(value: unknown, path: string, allowed: readonly string[]): string {
    if (typeof value === "string" && allowed.includes(value)) return value;
    this.issue(path, `must be one of ${allowed.join(", ")}`);
    return allowed[0] ?? "";
  }
}
