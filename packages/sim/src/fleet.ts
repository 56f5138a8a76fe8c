import type { AgentTiming, Clock, Heartbeat, MembershipView, Watchdog, WatchdogKind } from "@fenceline/contracts";
import {
  createAgent,
  waitForGate,
  createMemoryPeerNetwork,
  createMemorySelfFenceStore,
  createMemoryContactStore,
  createMemoryMembershipViewStore,
  agentOptionsOf,
  parseAgentConfig,
  type AgentConfig,
  type ContactStore,
  type MembershipViewStore,
  type Agent,
  type AgentTransport,
  type PeerTransport,
  type SelfFenceRecord,
  type SelfFenceStore,
} from "@fenceline/agent";
import type { Logger } from "@fenceline/bus";
import type { InMemoryCluster } from "./cluster.js";
import { createSwitchableTransport, type SwitchableTransport } from "./switchable-transport.js";
import { VirtualWatchdog } from "@fenceline/testing";

export type FaultKind =
  | "crash"
  | "network-loss"
  | "reboot"
  | "agent-crash"
  | "partition-minority"
  | "control-plane-outage"
  | "nats-loss"
  | "hang";

/**
 * What the fleet does to the machines' workloads when it crashes, boots, cuts off or powers off
 * a machine: the cluster model (InMemoryCluster) in the simulator, simulated kubelets against a
 * real API server (`@fenceline/kube-lab`'s KubeletFleet) in the Kubernetes tests.
 */
export type Machines = Pick<InMemoryCluster, "crash" | "boot" | "setReachable" | "startKubelet" | "powerOff">;

export type FleetOptions = {
  nodes: string[];
  clock: Clock;
  cluster: Machines;
  timing: AgentTiming;
  heartbeatIntervalMs: number;
  /** Builds a node's link to the control plane (NATS in the demo, memory in the lab). */
  transportFor: (node: string) => AgentTransport | Promise<AgentTransport>;
  /** How long a reset or rebooted node takes to boot again. */
  rebootMs: number;
  log: Logger;
  hostGroupOf?: (node: string) => string;
  checksumsOf?: (node: string) => Record<string, string> | undefined;
  /**
   * The boot gate (`fenceline agent --gate` as the kubelet's ExecStartPre): a machine that boots
   * again starts its kubelet only once the control plane's node state service, asked over the
   * node's own NATS path, says the engine's state of it lets it (`gateVerdict`). Default: off (the
   * kubelet starts with the boot, as on a node installed without the gate).
   */
  bootGate?: boolean;
  /** How often a closed gate asks again (default: 2 heartbeat intervals). */
  bootGateIntervalMs?: number;
  /** Every machine-level event (crash, boot, self-fence, network change), as it happens. */
  onEvent?: (event: FleetEvent) => void;
  /**
   * Each machine's agent configuration, as its config file gives it (`parseAgentConfig` of the
   * file rendered for the node; see `agentOptionsOf`). Default: the fleet's `timing` and
   * heartbeat interval, a watchdog device and no fallback, nothing else.
   */
  agentConfigOf?: (node: string) => AgentConfig;
  /**
   * The watchdog device a machine has: `hardware` (default; resets a hung machine too),
   * `softdog` (resets it when its agent dies, not when its kernel hangs) or `none` (the agent
   * runs only with its software fallback, which dies with it, or not at all). Its timeout is the
   * fleet's `timing.watchdogTimeoutMs`.
   */
  watchdogDeviceOf?: (node: string) => MachineWatchdog;
  /**
   * The membership view a machine's agent takes from an ack instead of the one it was sent (the
   * lab's broken variants); `first`: the first it took. Default: the one sent.
   */
  viewTaken?: (node: string, sent: MembershipView, first: MembershipView | undefined) => MembershipView;
};

export type MachineWatchdog = "hardware" | "softdog" | "none";

export type FleetEvent = { at: number; node: string; what: string };

/** One peer round of an agent, as the fleet saw it: when it asked, and whose agents were serving then. */
export type PeerRound = { at: number; serving: string[] };

type SimNode = {
  name: string;
  power: "up" | "down";
  boots: number;
  bootId: string;
  incarnation: number;
  agent: Agent | null;
  /** When the running agent started serving its peers (undefined while none runs). */
  agentSince: number | undefined;
  /** The running agent's latest peer round: when it asked, and which peers' agents were serving then. */
  lastPeerRound: PeerRound | undefined;
  transport: SwitchableTransport;
  watchdog: VirtualWatchdog | null;
  /** Set while the agent process is being killed: its watchdog must not be closed cleanly. */
  killing: boolean;
  selfFenceStore: SelfFenceStore & { readonly record: SelfFenceRecord | undefined };
  contactStore: ContactStore;
  /** The agent's membership.json: survives agent restarts and reboots, as on a disk. */
  membershipStore: MembershipViewStore;
  selfFences: SelfFenceRecord[];
  resets: number;
  /** Network losses in progress (they may overlap: a flap during a longer loss): isolated while > 0. */
  networkLosses: number;
  isolated: boolean;
  /** Partitions in progress that cut this node off (they may overlap): on side 1 while > 0. */
  partitions: number;
  /** Losses of this node's path to NATS in progress (its kubelet still reaches the API server): cut off from the control plane while > 0. */
  natsLosses: number;
  /** Partition side: nodes on different sides cannot talk; side 0 holds the control plane. */
  side: number;
  /** Hung: the kernel stopped; nothing runs, but the machine is powered on (power "down" for everything but its BMC). */
  hung: boolean;
  /** Powered off by its BMC: no scheduled boot brings it back, only a power-on does. */
  heldOff: boolean;
  /** Dead for good (decommissioned, or broken beyond repair): powered off, and a power-on does not boot it. */
  dead: boolean;
  /** What kind of watchdog the running agent reported (null while none runs, or it could not start). */
  watchdogKind: WatchdogKind | null;
  /** The first membership view its agents took (for a broken variant's `viewTaken`). */
  firstViewTaken: MembershipView | undefined;
};

/**
 * The simulated fleet: machines that crash, reboot and lose their network, each running the
 * real agent (heartbeats, watchdog, self-fencing) against a virtual watchdog that resets the
 * machine when it is not fed. The cluster model decides what actually runs where.
 */
export class SimFleet {
  readonly #options: FleetOptions;
  readonly #nodes = new Map<string, SimNode>();
  readonly #peers;
  #controlPlaneDown = false;
  readonly events: FleetEvent[] = [];
  readonly #timers = new Set<unknown>();
  readonly #configOverrides = new Map<string, AgentConfig>();
  readonly #deviceOverrides = new Map<string, MachineWatchdog>();
  #stopped = false;

  constructor(options: FleetOptions) {
    this.#options = options;
    this.#peers = createMemoryPeerNetwork({ clock: options.clock, canReach: (a, b) => this.canReach(a, b) });
    for (const name of options.nodes) this.#add(name);
  }

  #add(name: string): SimNode {
    const options = this.#options;
    {
      const node: SimNode = {
        name,
        power: "down",
        boots: 0,
        bootId: "",
        incarnation: 0,
        agent: null,
        agentSince: undefined,
        lastPeerRound: undefined,
        transport: createSwitchableTransport(() => options.transportFor(name)),
        watchdog: null,
        killing: false,
        selfFenceStore: createMemorySelfFenceStore(),
        contactStore: createMemoryContactStore(),
        membershipStore: createMemoryMembershipViewStore(),
        selfFences: [],
        resets: 0,
        networkLosses: 0,
        isolated: false,
        partitions: 0,
        natsLosses: 0,
        side: 0,
        hung: false,
        heldOff: false,
        dead: false,
        watchdogKind: null,
        firstViewTaken: undefined,
      };
      this.#nodes.set(name, node);
      return node;
    }
  }

  /**
   * A new machine joins the fleet (the caller has added it to the machines' model): it boots
   * with the same agent configuration as the others and no membership view yet; its agent learns
   * the fleet from the control plane.
   */
  async addMachine(name: string): Promise<void> {
    if (this.#nodes.has(name)) throw new Error(`machine ${name} already exists`);
    const node = this.#add(name);
    await this.#boot(node);
  }

  get nodes(): string[] {
    return [...this.#nodes.keys()];
  }

  #node(name: string): SimNode {
    const node = this.#nodes.get(name);
    if (!node) throw new Error(`unknown node ${name}`);
    return node;
  }

  #note(node: string, what: string) {
    const event = { at: this.#options.clock.now(), node, what };
    this.events.push(event);
    this.#options.log.info({ node }, `sim: ${node} ${what}`);
    this.#options.onEvent?.(event);
  }

  #later(ms: number, fn: () => void | Promise<void>) {
    const handle = this.#options.clock.setTimeout(() => {
      this.#timers.delete(handle);
      if (!this.#stopped) void fn();
    }, ms);
    this.#timers.add(handle);
  }

  /** Whether a node's agent can reach the control plane now. */
  reachesControlPlane(name: string): boolean {
    const node = this.#node(name);
    return node.power === "up" && !node.isolated && node.side === 0 && node.natsLosses === 0 && !this.#controlPlaneDown;
  }

  canReach(a: string, b: string): boolean {
    const x = this.#node(a);
    const y = this.#node(b);
    return x.power === "up" && y.power === "up" && !x.isolated && !y.isolated && x.side === y.side;
  }

  async #syncLink(node: SimNode) {
    if (this.reachesControlPlane(node.name)) await node.transport.connect();
    else await node.transport.disconnect();
  }

  /**
   * Applies the node's network faults in progress: it is isolated while any network loss lasts,
   * cut off while any partition that holds it lasts, and its kubelet reaches the API server (on
   * the control plane's side) only when neither holds. The end of one fault must not undo
   * another still in progress (seed 3490: the end of a flap made a partitioned node's kubelet
   * reachable, and it restarted its pod on the new boot).
   */
  async #syncNetwork(node: SimNode) {
    node.isolated = node.networkLosses > 0;
    node.side = node.partitions > 0 ? 1 : 0;
    this.#options.cluster.setReachable(node.name, !node.isolated && node.side === 0);
    await this.#syncLink(node);
  }

  async start(): Promise<void> {
    await Promise.all([...this.#nodes.values()].map((n) => this.#boot(n)));
  }

  async #boot(node: SimNode) {
    const { clock, timing, cluster } = this.#options;
    node.boots += 1;
    node.bootId = `${node.name}-boot-${node.boots}`;
    node.power = "up";
    const gated = node.boots > 1 && this.#options.bootGate === true;
    if (node.boots > 1) cluster.boot(node.name, node.bootId, { kubelet: !gated });
    await this.#syncLink(node);
    await this.#startAgent(node);
    this.#note(node.name, node.boots > 1 ? `booted (boot id ${node.bootId})${gated ? "; the boot gate holds its kubelet" : ""}` : "up");
    if (gated) void this.#bootGate(node, node.boots);
    void clock;
    void timing;
  }

  /**
   * The boot gate of boot number `boot`: asks the node state service over the node's NATS path
   * (failing while it cannot reach the control plane) until the engine's state of the node
   * opens it, then starts the kubelet. A gate whose boot has ended (the machine went down again)
   * stops asking and starts nothing.
   */
  async #bootGate(node: SimNode, boot: number) {
    const { clock, heartbeatIntervalMs } = this.#options;
    const stale = () => this.#stopped || node.boots !== boot || node.power !== "up";
    let lastWhy: string | undefined;
    const verdict = await waitForGate({
      clock,
      intervalMs: this.#options.bootGateIntervalMs ?? 2 * heartbeatIntervalMs,
      lookup: async () => {
        if (stale()) return undefined; // opens the gate of a boot that is gone: nothing is started
        const transport = node.transport.transport;
        if (!transport.lookupNodeState) throw new Error("no node state service");
        return transport.lookupNodeState(node.name, heartbeatIntervalMs);
      },
      onWait: (why) => {
        const kind = why.startsWith("the control plane cannot be asked") ? "unreachable" : why;
        if (kind !== lastWhy) this.#note(node.name, `boot gate closed: ${why}`);
        lastWhy = kind;
      },
    });
    if (stale()) return;
    this.#note(node.name, `boot gate open: ${verdict.why}; kubelet started`);
    this.#options.cluster.startKubelet(node.name);
  }

  /** The machine's agent configuration: its own, or the fleet's timing with a watchdog device and nothing else. */
  /**
   * Changes a machine for the rest of the run: another agent configuration (as if its file were
   * edited) and/or another watchdog device; its next agent start uses them.
   */
  reconfigure(name: string, change: { config?: AgentConfig; device?: MachineWatchdog }): void {
    this.#node(name);
    if (change.config) this.#configOverrides.set(name, change.config);
    if (change.device) this.#deviceOverrides.set(name, change.device);
  }

  #deviceOf(name: string): MachineWatchdog {
    return this.#deviceOverrides.get(name) ?? this.#options.watchdogDeviceOf?.(name) ?? "hardware";
  }

  /** A machine's agent configuration now (overrides included). */
  configOf(name: string): AgentConfig {
    return this.#configOf(name);
  }

  #configOf(name: string): AgentConfig {
    const override = this.#configOverrides.get(name);
    if (override) return override;
    const configured = this.#options.agentConfigOf?.(name);
    if (configured) return configured;
    const { timing, heartbeatIntervalMs } = this.#options;
    const hostGroup = this.#options.hostGroupOf?.(name) ?? "default";
    return parseAgentConfig({ node: name, heartbeatInterval: heartbeatIntervalMs, timing, hostGroup });
  }

  async #startAgent(node: SimNode) {
    const { clock, timing, log } = this.#options;
    const config = this.#configOf(node.name);
    const device = this.#deviceOf(node.name);
    node.watchdogKind = null;
    if (device === "none" && !config.watchdog.fallbackRebootCommand) {
      this.#note(node.name, "agent not started: no watchdog device and no fallback reboot command configured");
      return;
    }
    node.incarnation += 1;
    // A device: one per boot, so a restarted agent opens the same one (still armed if the
    // previous agent died without a magic close). The software fallback is a timer in the agent's
    // own process: a new one with every agent, and gone with it.
    const watchdog =
      device === "none"
        ? new VirtualWatchdog({
            clock,
            timeoutMs: timing.watchdogTimeoutMs,
            onFire: () => void this.#reset(node, "the agent's software fallback ran the reboot command"),
          })
        : (node.watchdog ??
          new VirtualWatchdog({ clock, timeoutMs: timing.watchdogTimeoutMs, onFire: () => void this.#reset(node, "watchdog fired") }));
    node.watchdog = watchdog;
    const guarded: Watchdog = {
      // What the agent was configured with, as /dev/watchdog is opened with; the device fires at its own.
      timeoutMs: config.timing.watchdogTimeoutMs,
      start: () => watchdog.start(),
      feed: () => watchdog.feed(),
      close: async () => {
        if (!node.killing) await watchdog.close();
      },
    };
    const checksums = this.#options.checksumsOf?.(node.name);
    // The agent's peer link, noting when it asks (a round asks every peer at once) and whose
    // agent was serving then: what the agent decides after a round rests on who could answer
    // when it asked, not on who is there when the round ends.
    const peers = this.#peers.transportFor(node.name);
    const observedPeers: PeerTransport = {
      ask: (peer, question, timeoutMs) => {
        const at = clock.now();
        if (node.lastPeerRound?.at !== at) node.lastPeerRound = { at, serving: [] };
        if (this.#nodes.get(peer.node)?.agentSince !== undefined) node.lastPeerRound.serving.push(peer.node);
        return peers.ask(peer, question, timeoutMs);
      },
      serve: (handler) => peers.serve(handler),
      close: () => peers.close(),
    };
    node.agentSince = undefined;
    node.lastPeerRound = undefined;
    const watchdogKind: WatchdogKind = device === "none" ? "software" : device;
    const transport = this.#options.viewTaken
      ? this.#alteringViews(node, node.transport.transport, this.#options.viewTaken)
      : node.transport.transport;
    let agent: Agent;
    try {
      agent = createAgent(
        agentOptionsOf(config, {
          bootId: node.bootId,
          incarnation: node.incarnation,
          membership: node.membershipStore,
          transport,
          peers: observedPeers,
          watchdog: guarded,
          watchdogKind,
          clock,
          ...(checksums ? { checksums: async () => checksums } : {}),
          selfFenceStore: node.selfFenceStore,
          contactStore: node.contactStore,
          log: log.child({ agent: node.name }),
          onSelfFence: (record) => {
            node.selfFences.push(record);
            this.#note(node.name, `fenced itself: ${record.reason}`);
          },
        }),
      );
    } catch (err) {
      this.#note(node.name, `agent not started: ${(err as Error).message}`);
      return;
    }
    node.agent = agent;
    node.watchdogKind = watchdogKind;
    await agent.start();
    node.agentSince = clock.now();
  }

  /** The agent's link, its acks' views replaced by `viewTaken`'s (a broken variant). */
  #alteringViews(node: SimNode, inner: AgentTransport, viewTaken: NonNullable<FleetOptions["viewTaken"]>): AgentTransport {
    return {
      ...inner,
      sendHeartbeat: (hb) => inner.sendHeartbeat(hb),
      onAck: (callback) =>
        inner.onAck((ack) => {
          const sent = ack.membership?.view;
          if (!sent) return callback(ack);
          const taken = viewTaken(node.name, sent, node.firstViewTaken);
          node.firstViewTaken ??= taken;
          callback({ ...ack, membership: { version: ack.membership!.version, view: taken } });
        }),
      onCommand: (handler) => inner.onCommand(handler),
      close: () => inner.close(),
      ...(inner.lookupNodeState ? { lookupNodeState: (n: string, ms: number) => inner.lookupNodeState!(n, ms) } : {}),
      ...(inner.withdraw ? { withdraw: (hb: Heartbeat, ms: number) => inner.withdraw!(hb, ms) } : {}),
    };
  }

  async #stopAgent(node: SimNode, how: "clean" | "kill") {
    const agent = node.agent;
    node.agent = null;
    node.agentSince = undefined;
    if (!agent) return;
    node.killing = how === "kill";
    try {
      await agent.stop({ clean: how === "clean" });
    } finally {
      node.killing = false;
    }
    // The software fallback's timer dies with the agent: nothing resets the machine now.
    if (how === "kill" && node.watchdogKind === "software") await node.watchdog?.close();
  }

  /** The machine is reset (watchdog) or power-cycled: everything stops, it boots after rebootMs. */
  async #reset(node: SimNode, why: string) {
    if (node.power !== "up" && !node.hung) return;
    node.hung = false;
    node.resets += 1;
    // Down first: a software fallback timer dies with its agent (closed there), a device is reset.
    await this.#powerDown(node, why);
    node.watchdog = null;
    this.#bootLater(node, this.#options.rebootMs);
  }

  /** A boot after `ms`, unless the machine is powered off by its BMC or already up by then. */
  #bootLater(node: SimNode, ms: number) {
    this.#later(ms, async () => {
      if (node.power !== "down" || node.heldOff || node.hung || node.dead) return;
      await this.#boot(node);
    });
  }

  async #powerDown(node: SimNode, why: string) {
    node.power = "down";
    this.#options.cluster.crash(node.name);
    await this.#stopAgent(node, "kill");
    await node.transport.disconnect();
    this.#note(node.name, `down: ${why}`);
  }

  /** Hard crash: the machine stops dead; it comes back (new boot) after `downForMs` if given. */
  async crash(name: string, downForMs?: number) {
    const node = this.#node(name);
    await this.#powerDown(node, "hard crash");
    if (downForMs !== undefined) this.#bootLater(node, downForMs);
  }

  /** A crashed machine is switched on again now (new boot id); no-op unless it is down. */
  async bootAgain(name: string) {
    const node = this.#node(name);
    if (node.power !== "down" || node.heldOff || node.hung) return;
    await this.#boot(node);
  }

  /** An administrator reboots the machine: clean agent stop, down for rebootMs, new boot id. */
  async reboot(name: string) {
    const node = this.#node(name);
    await this.#stopAgent(node, "clean");
    node.power = "down";
    this.#options.cluster.crash(node.name);
    await node.transport.disconnect();
    this.#note(name, "rebooting");
    this.#bootLater(node, this.#options.rebootMs);
  }

  /** The node loses its network for `forMs`: its containers keep running. */
  async networkLoss(name: string, forMs: number) {
    const node = this.#node(name);
    node.networkLosses += 1;
    await this.#syncNetwork(node);
    this.#note(name, `lost its network for ${forMs} ms`);
    this.#later(forMs, async () => {
      node.networkLosses -= 1;
      await this.#syncNetwork(node);
      this.#note(
        name,
        node.isolated
          ? "one network loss ended; another still holds"
          : node.side !== 0
            ? "network restored (still partitioned off)"
            : "network restored",
      );
    });
  }

  /** Cuts `group` off from the rest (and from the control plane) for `forMs`. */
  async partition(group: string[], forMs: number) {
    for (const name of group) {
      const node = this.#node(name);
      node.partitions += 1;
      await this.#syncNetwork(node);
    }
    this.#note(group.join(","), `partitioned off for ${forMs} ms`);
    this.#later(forMs, async () => {
      for (const name of group) {
        const node = this.#node(name);
        node.partitions -= 1;
        await this.#syncNetwork(node);
      }
      this.#note(group.join(","), "partition healed");
    });
  }

  /**
   * The node loses its path to the control plane (NATS: heartbeats, acks, commands, node state
   * lookups) for `forMs`; its kubelet still reaches the API server and its agent its peers.
   * Overlapping losses are counted: the path is back when the last one ends.
   */
  async natsLoss(name: string, forMs: number) {
    const node = this.#node(name);
    node.natsLosses += 1;
    await this.#syncLink(node);
    this.#note(name, `lost its path to the control plane (NATS) for ${forMs} ms; its kubelet still reaches the API server`);
    this.#later(forMs, async () => {
      node.natsLosses -= 1;
      await this.#syncLink(node);
      this.#note(name, node.natsLosses > 0 ? "one NATS path loss ended; another still holds" : "NATS path restored");
    });
  }

  /** No agent reaches the control plane for `forMs`; agents still reach each other. */
  async controlPlaneOutage(forMs: number) {
    this.#controlPlaneDown = true;
    await Promise.all([...this.#nodes.values()].map((n) => this.#syncLink(n)));
    this.#note("*", `control plane unreachable for ${forMs} ms`);
    this.#later(forMs, async () => {
      this.#controlPlaneDown = false;
      await Promise.all([...this.#nodes.values()].map((n) => this.#syncLink(n)));
      this.#note("*", "control plane reachable again");
    });
  }

  /** The agent process dies (its watchdog stays armed); restarted after `restartAfterMs` if given. */
  async agentCrash(name: string, restartAfterMs?: number) {
    const node = this.#node(name);
    await this.#stopAgent(node, "kill");
    this.#note(name, "agent crashed");
    if (restartAfterMs !== undefined) {
      this.#later(restartAfterMs, async () => {
        if (node.power !== "up" || node.agent) return;
        await this.#startAgent(node);
        await this.#syncLink(node);
        this.#note(name, "agent restarted");
      });
    }
  }

  /** The agent is stopped cleanly (as by systemctl restart) and started again after `restartAfterMs`. */
  async restartAgent(name: string, restartAfterMs: number) {
    const node = this.#node(name);
    await this.#stopAgent(node, "clean");
    this.#note(name, "agent stopped cleanly for a restart");
    this.#later(restartAfterMs, async () => {
      if (node.power !== "up" || node.agent) return;
      await this.#startAgent(node);
      await this.#syncLink(node);
      this.#note(name, "agent restarted");
    });
  }

  /**
   * Kernel hang: nothing runs on the machine any more (no agent, no containers), yet it stays
   * powered on. A working watchdog resets it after its timeout; a broken one never does, and
   * only its BMC can end the hang (power off, then on).
   */
  async hang(name: string, options: { watchdog: "works" | "broken" }) {
    const node = this.#node(name);
    if (node.power !== "up") return;
    // Only a hardware watchdog resets a hung kernel: softdog is a kernel timer, and the software
    // fallback a timer in the (now frozen) agent.
    const resets = options.watchdog === "works" && this.#deviceOf(name) === "hardware";
    await this.#powerDown(
      node,
      resets ? "kernel hang (its watchdog will reset it)" : "kernel hang; nothing resets it: only its BMC can end it",
    );
    node.hung = true;
    // The agent died without a magic close: a working hardware watchdog stays armed and fires.
    if (!resets) await node.watchdog?.close();
  }

  /**
   * Its BMC powers the machine off: whatever ran (or hung) stops, its watchdog loses power, and
   * no scheduled boot brings it back until `powerOn`.
   */
  async powerOff(name: string) {
    const node = this.#node(name);
    if (node.heldOff) return;
    node.heldOff = true;
    const wasRunning = node.power === "up";
    node.hung = false;
    await node.watchdog?.close();
    node.watchdog = null;
    if (wasRunning) await this.#powerDown(node, "powered off by its BMC");
    else this.#note(name, "powered off by its BMC");
    this.#options.cluster.powerOff(name);
  }

  /**
   * The machine dies for good (decommissioned, or broken beyond repair): powered off, and no
   * power-on (a fence agent's unfencing) ever boots it again.
   */
  async retire(name: string) {
    const node = this.#node(name);
    node.dead = true;
    await this.powerOff(name);
  }

  /** Its BMC powers the machine on: it boots (new boot id) after `rebootMs`, as any boot. */
  async powerOn(name: string) {
    const node = this.#node(name);
    if (!node.heldOff) return;
    node.heldOff = false;
    this.#note(name, node.dead ? "powered on by its BMC, but it is dead: it does not boot" : "powered on by its BMC");
    this.#bootLater(node, this.#options.rebootMs);
  }

  /** What the machine's BMC reads: on unless the BMC powered it off (a reset or a hang keeps the power on). */
  powerState(name: string): "on" | "off" {
    return this.#node(name).heldOff ? "off" : "on";
  }

  status(name: string) {
    const node = this.#node(name);
    return {
      node: name,
      power: node.power,
      hung: node.hung,
      /** Powered off by its BMC. */
      poweredOff: node.heldOff,
      /** Dead for good: it never boots again. */
      dead: node.dead,
      bootId: node.bootId,
      boots: node.boots,
      resets: node.resets,
      selfFenced: node.selfFences.length > 0,
      selfFences: [...node.selfFences],
      reachesControlPlane: this.reachesControlPlane(name),
      agent: node.agent?.state(),
      /** What the running agent reports resets the machine (null: no agent). */
      watchdogKind: node.watchdogKind,
      /** When the running agent started answering its peers (undefined while none runs). */
      agentSince: node.agentSince,
      /** The running agent's latest peer round: when it asked, and whose agents were serving then. */
      lastPeerRound: node.lastPeerRound ? { at: node.lastPeerRound.at, serving: [...node.lastPeerRound.serving] } : undefined,
    };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const handle of this.#timers) this.#options.clock.clearTimeout(handle);
    this.#timers.clear();
    for (const node of this.#nodes.values()) {
      await this.#stopAgent(node, "clean");
      await node.transport.disconnect();
    }
  }
}
