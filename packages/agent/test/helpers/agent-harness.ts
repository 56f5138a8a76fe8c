import { AgentTiming, createMembershipView, type Heartbeat, type HeartbeatAck, type MembershipView } from "@fenceline/contracts";
import { createAgent, type Agent } from "../../src/agent.js";
import { createMemoryPeerNetwork, type MemoryPeerNetwork } from "../../src/memory-peers.js";
import { createMemoryAgentTransport, type MemoryAgentTransport } from "../../src/memory-transport.js";
import type { PeerAnswer } from "../../src/peer-protocol.js";
import { createMemoryMembershipViewStore } from "../../src/membership-store.js";
import type { MembershipViewStore, SelfFenceStore, WatchdogStopCommand } from "../../src/ports.js";
import { VirtualClock, VirtualWatchdog } from "@fenceline/testing";
import { silentLog } from "./silent-log.js";

export const TIMING = AgentTiming.parse({ controlPlaneTimeoutMs: 5_000, peerRoundMs: 2_000, watchdogTimeoutMs: 9_000, marginMs: 5_000 });
export const HEARTBEAT_MS = 1_000;

export interface Harness {
  clock: VirtualClock;
  agent: Agent;
  transport: MemoryAgentTransport;
  watchdog: VirtualWatchdog;
  network: MemoryPeerNetwork;
  /** Cuts or restores this node's link to the control plane. */
  setControlPlane(up: boolean): void;
  /** Makes a peer answer with `answer` (undefined: the peer is silent). */
  scriptPeer(peer: string, answer: Omit<PeerAnswer, "node"> | undefined): void;
  /** The view the control plane serves in its acks (as the heartbeat detector does); null: none. */
  serveView(view: MembershipView | null): void;
  membership: MembershipViewStore & { readonly view: MembershipView | undefined };
}

export interface HarnessOptions {
  node?: string;
  peers?: string[];
  /** The fleet's members in the view the control plane serves (default: this node and its peers). */
  members?: string[];
  witness?: boolean;
  bootId?: string;
  selfFenceStore?: SelfFenceStore;
  nodeState?: (node: string) => string | undefined;
  clock?: VirtualClock;
  network?: MemoryPeerNetwork;
}

/** One agent, in memory, on a fake clock; peers are scripted answers on the memory network. */
export function createHarness(options: HarnessOptions = {}): Harness {
  const node = options.node ?? "a";
  const peers = options.peers ?? ["b", "c", "d", "e"];
  const clock = options.clock ?? new VirtualClock(1_000_000);
  let controlPlaneUp = true;
  const silent = new Set<string>(peers);
  const network = options.network ?? createMemoryPeerNetwork({ clock, canReach: (from, to) => !silent.has(from) && !silent.has(to) });
  let served: MembershipView | null = createMembershipView(
    1,
    options.witness ?? true,
    (options.members ?? [node, ...peers]).map((n) => ({ node: n })),
  );
  const transport = createMemoryAgentTransport({
    controlPlaneReachable: () => controlPlaneUp,
    respond: (hb: Heartbeat): HeartbeatAck => {
      const held = hb.contract?.membershipVersion ?? 0;
      const membership = served ? { version: served.version, ...(held < served.version ? { view: served } : {}) } : undefined;
      return {
        v: 1,
        node: hb.node,
        at: clock.now(),
        state: "healthy",
        ...(membership ? { membership } : {}),
        ...(hb.stopping ? { withdrawn: true as const } : {}),
      };
    },
    ...(options.nodeState ? { nodeState: options.nodeState } : {}),
  });
  const membership = createMemoryMembershipViewStore();
  const watchdog = new VirtualWatchdog({ clock, timeoutMs: TIMING.watchdogTimeoutMs });
  const agent = createAgent({
    node,
    bootId: options.bootId ?? "boot-1",
    incarnation: 1,
    hostGroup: "workers",
    timing: TIMING,
    heartbeatIntervalMs: HEARTBEAT_MS,
    membership,
    ...(options.selfFenceStore ? { selfFenceStore: options.selfFenceStore } : {}),
    transport,
    peers: network.transportFor(node),
    watchdog,
    watchdogKind: "hardware",
    clock,
    log: silentLog,
  });
  return {
    clock,
    agent,
    transport,
    watchdog,
    network,
    membership,
    serveView: (view) => {
      served = view;
    },
    setControlPlane: (up) => {
      controlPlaneUp = up;
    },
    scriptPeer: (peer, answer) => {
      if (answer === undefined) return void silent.add(peer);
      silent.delete(peer);
      network.transportFor(peer).serve(async () => ({ node: peer, ...answer }));
    },
  };
}

export function watchdogStop(overrides: Partial<WatchdogStopCommand> & { now: number }): WatchdogStopCommand {
  const { now, ...rest } = overrides;
  return {
    v: 1,
    id: "cmd-1",
    node: "a",
    epoch: 3,
    kind: "watchdog.stop",
    issuedAt: now,
    deadline: now + 30_000,
    causedBy: 42,
    params: { reason: "node suspected" },
    ...rest,
  };
}
