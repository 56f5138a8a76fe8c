import type { AgentOptions } from "./agent.js";
import type { AgentConfig } from "./config.js";

/** What a running agent gets from its host rather than its configuration file. */
export type AgentRuntime = Pick<
  AgentOptions,
  | "bootId"
  | "incarnation"
  | "transport"
  | "peers"
  | "watchdog"
  | "watchdogKind"
  | "clock"
  | "log"
  | "membership"
  | "selfFenceStore"
  | "contactStore"
  | "checksums"
  | "onSelfFence"
> & {
  /** The port the peer server really bound (the advertised URL's port when the config says 0). */
  peerPort?: number;
};

/**
 * The agent's options from its configuration and its host: one mapping, used by `fenceline
 * agent` (real files, NATS, HTTP, the device) and by the simulator (memory and virtual ones), so
 * the lab runs agents configured exactly as a config file configures them.
 */
export function agentOptionsOf(config: AgentConfig, runtime: AgentRuntime): AgentOptions {
  const { peerPort, ...host } = runtime;
  const peerUrl =
    config.peerAdvertiseUrl === undefined
      ? undefined
      : peerPort === undefined
        ? config.peerAdvertiseUrl
        : withBoundPort(config.peerAdvertiseUrl, peerPort);
  return {
    ...host,
    node: config.node,
    timing: config.timing,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    addressBook: config.peers,
    checksumIntervalMs: config.checksumIntervalMs,
    ...(peerUrl !== undefined ? { peerUrl } : {}),
    ...(config.hostGroup !== undefined ? { hostGroup: config.hostGroup } : {}),
    ...(config.controlPlane !== undefined ? { controlPlane: config.controlPlane } : {}),
  };
}

/** The advertised URL with the port the peer server really bound when it says port 0 (tests). */
function withBoundPort(url: string, port: number): string {
  const parsed = new URL(url);
  if (parsed.port !== "0") return url;
  parsed.port = String(port);
  return parsed.toString().replace(/\/$/, "");
}
