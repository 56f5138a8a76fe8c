import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Policy } from "@fenceline/contracts";
import { renderAsDeployed } from "../support/deploy-agent.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CLI = join(ROOT, "packages", "cli", "dist", "bin.js");

/**
 * A small network lab: one network namespace per node, each with a veth pair whose host end is
 * on a bridge in the host namespace. The host holds the bridge's first address (where
 * nats-server listens); node i is 10.213.S.(10+i). A second, address-less bridge holds nodes
 * that are partitioned off: they still reach each other but neither the host nor the others.
 * Every name carries the test process's pid, so parallel runs never collide; traffic stays
 * inside these namespaces and bridges.
 */

function ip(args: string[], options: { check?: boolean } = {}): { ok: boolean; output: string } {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  const ok = r.status === 0;
  const output = `${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? r.error.message : ""}`.trim();
  if (!ok && options.check !== false) throw new Error(`ip ${args.join(" ")}: ${output || `exit ${r.status}`}`);
  return { ok, output };
}

/** Why network namespaces cannot be used here, or null when they can (probed by creating one). */
export function netnsUnavailable(): string | null {
  const probe = `flprobe${process.pid}`;
  const r = ip(["netns", "add", probe], { check: false });
  if (!r.ok) return `\`ip netns add\` failed (${r.output || "not root?"}): network namespaces are unavailable`;
  ip(["netns", "del", probe], { check: false });
  return null;
}

/** A /24 under 10.213.0.0/16 that no host interface uses, chosen from the pid. */
function pickSubnet(): number {
  const used = ip(["-4", "-o", "addr"], { check: false }).output;
  for (let i = 0; i < 250; i++) {
    const s = 1 + ((process.pid + i) % 250);
    if (!used.includes(`10.213.${s}.`)) return s;
  }
  throw new Error("no free 10.213.x.0/24 subnet");
}

export type Lab = {
  /** The host's address on the bridge (nats-server listens here). */
  hostIp: string;
  namespaces: string[];
  ipOf(i: number): string;
  /** Link of node i down (its veth's host end): it reaches nobody. */
  cut(i: number): void;
  /** Moves nodes onto the partition bridge: they reach each other only. */
  partition(indexes: number[]): void;
  /** Every link up, every node back on the main bridge. */
  heal(): void;
  /**
   * Node i's machine resets: its namespace is deleted and made again, with the link as the tests
   * left it (cut, partitioned). Every socket of the old kernel is gone, as after a real reset.
   * Kill its processes first.
   */
  powerCycle(i: number): void;
  /** Removes namespaces (and with them the veths) and bridges. Idempotent, synchronous. */
  destroy(): void;
};

export function createLab(nodes: number): Lab {
  const tag = process.pid;
  const s = pickSubnet();
  const bridge = `flb${tag}`;
  const partitionBridge = `flp${tag}`;
  const namespaces = Array.from({ length: nodes }, (_, i) => `fl${tag}n${i}`);
  const hostEnd = (i: number) => `flv${tag}h${i}`;
  const nsEnd = (i: number) => `flv${tag}n${i}`;
  const hostIp = `10.213.${s}.1`;
  const ipOf = (i: number) => `10.213.${s}.${10 + i}`;

  let destroyed = false;
  const destroy = () => {
    if (destroyed) return;
    destroyed = true;
    for (const ns of namespaces) ip(["netns", "del", ns], { check: false });
    for (let i = 0; i < nodes; i++) ip(["link", "del", hostEnd(i)], { check: false });
    ip(["link", "del", bridge], { check: false });
    ip(["link", "del", partitionBridge], { check: false });
  };
  process.once("exit", destroy);

  /** What the tests did to each node's link (kept across a power cycle). */
  const linkDown = new Set<number>();
  const partitioned = new Set<number>();
  const setupNode = (i: number) => {
    const ns = namespaces[i]!;
    ip(["netns", "add", ns]);
    ip(["link", "add", hostEnd(i), "type", "veth", "peer", "name", nsEnd(i)]);
    ip(["link", "set", nsEnd(i), "netns", ns]);
    ip(["link", "set", hostEnd(i), "master", partitioned.has(i) ? partitionBridge : bridge]);
    if (!linkDown.has(i)) ip(["link", "set", hostEnd(i), "up"]);
    ip(["-n", ns, "addr", "add", `${ipOf(i)}/24`, "dev", nsEnd(i)]);
    ip(["-n", ns, "link", "set", nsEnd(i), "up"]);
    ip(["-n", ns, "link", "set", "lo", "up"]);
  };

  try {
    ip(["link", "add", bridge, "type", "bridge"]);
    ip(["addr", "add", `${hostIp}/24`, "dev", bridge]);
    ip(["link", "set", bridge, "up"]);
    ip(["link", "add", partitionBridge, "type", "bridge"]);
    ip(["link", "set", partitionBridge, "up"]);
    namespaces.forEach((_, i) => setupNode(i));
  } catch (err) {
    destroy();
    throw err;
  }

  return {
    hostIp,
    namespaces,
    ipOf,
    cut: (i) => {
      linkDown.add(i);
      ip(["link", "set", hostEnd(i), "down"]);
    },
    partition: (indexes) => {
      for (const i of indexes) {
        partitioned.add(i);
        ip(["link", "set", hostEnd(i), "master", partitionBridge]);
      }
    },
    heal: () => {
      linkDown.clear();
      partitioned.clear();
      for (let i = 0; i < nodes; i++) {
        ip(["link", "set", hostEnd(i), "master", bridge]);
        ip(["link", "set", hostEnd(i), "up"]);
      }
    },
    powerCycle: (i) => {
      // The namespace goes with every socket in it (and the veth with it), as a reset takes the
      // kernel's: nothing a dead process left in a send buffer reaches anyone afterwards.
      ip(["netns", "del", namespaces[i]!]);
      ip(["link", "del", hostEnd(i)], { check: false });
      setupNode(i);
    },
    destroy,
  };
}

export type AgentProcess = {
  node: string;
  child: ChildProcess;
  watchdog: string;
  logFile: string;
  /** The configuration file it runs (deploy/agent.json as the DaemonSet renders it, see `agentConfigAsDeployed`). */
  configFile: string;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
};

/** What the test changes in the rendered configuration, and why (nothing else differs). */
export const TEST_OVERRIDES = [
  "nats.url: the test's nats-server on the host end of the bridge",
  "heartbeatInterval, timing: the test policy's (seconds instead of tens of seconds)",
  "watchdog.path: a plain file (every keep-alive appends a byte), with watchdog.sysfsDir holding a hardware driver's identity so that the contract says hardware, as on a node with a real device",
  "stateDir, bootIdFile: a directory of the test (the node's membership view, self-fence and contact files survive its agent's restarts and the simulated reboots there)",
] as const;

/**
 * The agent configuration of `node` exactly as deploy/ ships it (deploy/agent.json rendered by
 * the DaemonSet's own init container for the node's name and address: no list of peers, no fleet
 * size), with only TEST_OVERRIDES applied.
 */
function agentConfigAsDeployed(options: {
  node: string;
  ip: string;
  natsUrl: string;
  nodeDir: string;
  policy: Policy;
}): Record<string, unknown> {
  const rendered = JSON.parse(renderAsDeployed({ name: options.node, ip: options.ip })) as Record<string, unknown> & {
    watchdog: Record<string, unknown>;
  };
  return {
    ...rendered,
    nats: { url: options.natsUrl },
    heartbeatInterval: options.policy.heartbeat.intervalMs,
    timing: options.policy.agent,
    watchdog: { ...rendered.watchdog, path: join(options.nodeDir, "watchdog"), sysfsDir: join(options.nodeDir, "sysfs") },
    stateDir: join(options.nodeDir, "state"),
    bootIdFile: join(options.nodeDir, "boot_id"),
  };
}

/**
 * Starts `fenceline agent --config <file>` as its own OS process inside namespace `ns`, with the
 * configuration deploy/ renders for it (`agentConfigAsDeployed`) and a file as its watchdog
 * (every keep-alive appends a byte: its size says whether it is fed). The node's directory is
 * kept between starts: a restart (or a simulated reboot: `bootId`) finds its state there.
 */
export async function startAgentProcess(options: {
  dir: string;
  ns: string;
  node: string;
  ip: string;
  natsUrl: string;
  policy: Policy;
  bootId: string;
}): Promise<AgentProcess> {
  const nodeDir = join(options.dir, options.node);
  await mkdir(join(nodeDir, "sysfs"), { recursive: true });
  await mkdir(join(nodeDir, "state"), { recursive: true });
  const watchdog = join(nodeDir, "watchdog");
  if (!existsSync(watchdog)) await writeFile(watchdog, "");
  await writeFile(join(nodeDir, "sysfs", "identity"), "iTCO_wdt\n");
  await writeFile(join(nodeDir, "boot_id"), `${options.bootId}\n`);
  const configFile = join(nodeDir, "agent.json");
  await writeFile(configFile, JSON.stringify(agentConfigAsDeployed({ ...options, nodeDir }), null, 2));
  const logFile = join(nodeDir, "agent.log");
  const log = createWriteStream(logFile, { flags: "a" });
  const child = spawn("ip", ["netns", "exec", options.ns, process.execPath, CLI, "agent", "--config", configFile], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  return { node: options.node, child, watchdog, logFile, configFile, exited };
}

async function watchdogSize(path: string): Promise<number> {
  return existsSync(path) ? (await stat(path)).size : 0;
}

/**
 * Polls the watchdog files and remembers, per file, when it last grew (a keep-alive landed).
 */
export function feedMonitor(files: Record<string, string>, everyMs = 50) {
  const sizes = new Map<string, number>();
  const lastFed = new Map<string, number>();
  let running = true;
  const loop = (async () => {
    while (running) {
      const now = Date.now();
      for (const [node, file] of Object.entries(files)) {
        const size = await watchdogSize(file);
        if (size !== sizes.get(node)) {
          sizes.set(node, size);
          if (size > 0) lastFed.set(node, now);
        }
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    lastFed: (node: string) => lastFed.get(node),
    size: (node: string) => sizes.get(node) ?? 0,
    async stop() {
      running = false;
      await loop;
    },
  };
}
