import {
  ACTUATOR_OF,
  ACTUATORS,
  createEvent,
  nodeFromToken,
  OUT_OF_SERVICE_TAINT,
  type Actuator,
  type AuditRecord,
  type Command,
  type NodeEvent,
  type Clock,
  type ClusterApi,
  type Heartbeat,
  type HeartbeatAck,
  type Policy,
  type Provisioner,
  type Taint,
} from "@fenceline/contracts";
import {
  createDecider,
  createEngineCore,
  createMemorySnapshotStore,
  createPartitionLoop,
  createTimerService,
  DEFAULT_BATCH_SIZE,
  trackApplied,
  type FoldResult,
  type NodeSnapshot,
  type OutputSink,
  type PartitionLoop,
  type SnapshotStore,
  type TimerService,
} from "@fenceline/engine";
import {
  createConditionDetector,
  createHeartbeatDetector,
  createMembershipKeeper,
  defaultConditionRules,
  createMemoryMembershipStore,
  heartbeatAck,
  peerUrlOf,
  type MembershipKeeper,
} from "@fenceline/detectors";
import {
  createActuator,
  createAgentRelay,
  createCommandLoop,
  createClusterHandlers,
  createGuardHandlers,
  createMemoryBudgetStore,
  createProvisionerHandlers,
  createFenceDevices,
  createFenceHandlers,
  type ActuatorCore,
  type FenceDevicesConfig,
  createFleetTracker,
  minDipMsOf,
  type FleetTracker,
  type FleetView,
  type Handlers,
} from "@fenceline/actuators";
import { createMemoryAgentTransport, type MemoryAgentTransport } from "@fenceline/agent";
import type { DeadLetterSink, Logger } from "@fenceline/bus";
import { Consumers, Streams, Subjects } from "@fenceline/streams";
import type { NodeMachine } from "@fenceline/statecharts";
import { InMemoryCluster } from "../cluster.js";
import { SimFleet, type FleetEvent, type FleetOptions } from "../fleet.js";
import { createSimBmcs, SIM_BMC_PASSWORD, type SimBmcs, type SimBmcTiming } from "../bmc/sim-bmc.js";
import type { VirtualClock } from "@fenceline/testing";
import { BusUnavailableError, SimBus, SimConsumer, SimPartitionConsumer, SimStream, SimSubscription } from "./bus.js";
import { LabChecker } from "./invariants.js";
import { slotLimit } from "./policy.js";
import type { Prng } from "./prng.js";

/** A logger that drops everything (the lab runs thousands of fleets; its record is the audit). */
export const silentLogger: Logger = (() => {
  const noop = () => {};
  const log: Record<string, unknown> = {
    level: "silent",
    info: noop,
    warn: noop,
    error: noop,
    debug: noop,
    trace: noop,
    fatal: noop,
    silent: noop,
    isLevelEnabled: () => false,
  };
  log.child = () => log;
  return log as unknown as Logger;
})();

/**
 * The lab's FL_EVENTS has one partition: every node's events go to `fl.evt.0.<node>`, consumed by
 * `engine-0` (production's default is 16, one loop each; the loop is the same code).
 */
export const LAB_PARTITIONS = 1;

const slowest = (faults: Map<number, ApiMode>) => Math.max(0, ...[...faults.values()].map((m) => (m.kind === "slow" ? m.delayMs : 0)));
const failing = (faults: Map<number, ApiMode>) => [...faults.values()].some((m) => m.kind === "failing");

/** Thrown by the engine's ports at the chosen crash point: the process dies there. */
class SimulatedCrash extends Error {
  override readonly name = "SimulatedCrash";
}

export type EngineCrashPoint = "idle" | "after-outputs" | "after-snapshot";

/** Where the lab's trail lines come from. */
export type TrailLine = { at: number; node: string; what: string };

export type LabWorldOptions = {
  clock: VirtualClock;
  rng: Prng;
  policy: Policy;
  /** The machine to run (a deliberately broken one in the lab's self-test). Default: the policy's. */
  machine?: NodeMachine;
  nodes: string[];
  statefulSets: Array<{ name: string; replicas: number }>;
  deployments: Array<{ name: string; replicas: number }>;
  rebootMs: number;
  ackWaitMs: number;
  /** Ticks of the kubelets and controllers. */
  clusterStepMs?: number;
  /** The boot gate on every machine (see `FleetOptions.bootGate`). Default: on. */
  bootGate?: boolean;
  /** Kubernetes' own eviction of an unreachable node's pods (node monitor grace + toleration). */
  unreachableEvictionMs?: number | null;
  /** Each machine's agent configuration (see `FleetOptions.agentConfigOf`). */
  agentConfigOf?: FleetOptions["agentConfigOf"];
  /** Each machine's watchdog device (see `FleetOptions.watchdogDeviceOf`). */
  watchdogDeviceOf?: FleetOptions["watchdogDeviceOf"];
  /** The views agents take from their acks (a broken variant). */
  viewTaken?: FleetOptions["viewTaken"];
  /**
   * Power fencing: the fence devices (simulated BMCs behind the production device code, see
   * `simBmcDevices`) the fence actuator runs, and the BMCs' timing (default: a real server's).
   */
  power?: { devices: FenceDevicesConfig; timing?: SimBmcTiming };
};

/** What makes the simulated Kubernetes API server slow or failing, for the actuator faults. */
export type ApiMode = { kind: "ok" } | { kind: "slow"; delayMs: number } | { kind: "failing" };

/**
 * The whole system in one process on one virtual clock: the control plane (engine core, timer
 * service, heartbeat detector, fleet guard and actuators) on an in-memory JetStream, a fleet of
 * machines each running the real agent against a virtual watchdog, and the cluster model the
 * actuators act on. The same code as production: only the adapters are in memory.
 */
export class LabWorld {
  readonly clock: VirtualClock;
  readonly policy: Policy;
  readonly cluster: InMemoryCluster;
  readonly fleet: SimFleet;
  readonly bus: SimBus;
  readonly events: SimStream<NodeEvent>;
  readonly commands: SimStream<Command>;
  readonly audit: SimStream<AuditRecord>;
  readonly checker: LabChecker;
  readonly snapshots = createMemorySnapshotStore();
  readonly budget = createMemoryBudgetStore();
  /** FL_MEMBERS: the membership views the keeper wrote. */
  readonly members = createMemoryMembershipStore();
  readonly trail: TrailLine[] = [];
  /** Inputs the control plane dead-lettered (FL_DLQ): `msgID` is `dlq:<stream>:<seq>`. */
  readonly deadLetters: Array<{ source: string; subject: string; msgID: string; reason: string; error: string }> = [];
  readonly engineConsumer: SimConsumer<NodeEvent>;
  readonly actuatorConsumers: Map<Actuator, SimConsumer<Command>>;
  /** When the heartbeat path (core NATS) delays or duplicates messages. */
  heartbeatChaos: { duplicate: number; delay: number; maxDelayMs: number } | null = null;
  /** Active actuator faults, by fault id: the API server (or provisioner) is slow or failing while any is. */
  readonly apiFaults = new Map<number, ApiMode>();
  readonly provisionerFaults = new Map<number, ApiMode>();
  readonly stats = { engineCrashes: 0, engineRestarts: 0, foldsApplied: 0, heartbeats: 0 };
  /** The machines' BMCs when the world fences by power (their faults are set here). */
  readonly bmcs: SimBmcs | null;

  readonly #rng: Prng;
  readonly #decider;
  readonly #links = new Map<string, MemoryAgentTransport>();
  readonly #actuators: ActuatorCore[] = [];
  readonly #detector;
  readonly #keeper: MembershipKeeper;
  #fleet!: FleetTracker;
  #engine: { timers: TimerService; loop: PartitionLoop; consumer: SimPartitionConsumer<NodeEvent>; process: { dead: boolean } } | null =
    null;
  readonly #subscriptions: SimSubscription<Command>[] = [];
  #crashPoint: EngineCrashPoint | null = null;
  #engineDownMs = 0;
  readonly #intervals: unknown[] = [];
  #stopped = false;
  /** The most slots the policy has allowed at any time of the run (the fleet grows and shrinks). */
  #limit: number;

  constructor(options: LabWorldOptions) {
    const { clock, policy, rng } = options;
    this.clock = clock;
    this.policy = policy;
    this.#rng = rng;
    this.#decider = createDecider(policy, options.machine);
    this.#limit = slotLimit(policy, options.nodes.length);
    this.#fleet = createFleetTracker({
      now: () => clock.now(),
      heartbeatTimeoutMs: policy.heartbeat.timeoutMs,
      minDipMs: minDipMsOf(policy),
    });

    this.cluster = new InMemoryCluster({ clock, nodes: options.nodes, unreachableEvictionMs: options.unreachableEvictionMs ?? null });
    for (const s of options.statefulSets) this.cluster.addStatefulSet(s.name, s.replicas);
    for (const d of options.deployments) this.cluster.addDeployment(d.name, d.replicas);
    // Real nodes always run DaemonSet pods that tolerate every taint (kube-proxy, a CNI, the agent).
    this.cluster.addDaemonSet("node-agent");
    this.checker = new LabChecker(this.cluster);

    this.bus = new SimBus(clock, rng.fork(1));
    const windowMs = 2 * 60_000;
    this.events = new SimStream<NodeEvent>("FL_EVENTS", this.bus, windowMs);
    this.commands = new SimStream<Command>("FL_COMMANDS", this.bus, windowMs);
    this.audit = new SimStream<AuditRecord>("FL_AUDIT", this.bus, windowMs);
    // The consumers' filters are subjects, as provisioned (streams/): `fl.evt.0.*`, `fl.cmd.<actuator>.*`.
    const partitionPrefix = Subjects.eventPartition(0).slice(0, -1);
    this.engineConsumer = new SimConsumer(
      Consumers.enginePartition(0),
      this.events,
      (m) => m.subject.startsWith(partitionPrefix),
      options.ackWaitMs,
      "all",
    );
    this.actuatorConsumers = new Map(
      ACTUATORS.map((name) => {
        const prefix = Subjects.commandsFor(name).slice(0, -1);
        return [
          name,
          new SimConsumer<Command>(Consumers.actuator(name), this.commands, (m) => m.subject.startsWith(prefix), options.ackWaitMs),
        ];
      }),
    );

    this.#detector = createHeartbeatDetector({
      clock,
      timeoutMs: policy.heartbeat.timeoutMs,
      publish: async (event) => void this.publishEvent(event),
    });
    // The control plane's membership keeper, as `fenceline up` runs it: FL_NODES in, FL_MEMBERS out.
    this.#keeper = createMembershipKeeper({
      store: this.members,
      witness: policy.fleet.witness,
      onWritten: (view) => {
        this.#fleet.onMembership(view);
        this.#note("*", `membership view v${view.version}: ${view.members.map((m) => m.node).join(", ")}`);
      },
    });

    const bmcRng = rng.fork(4);
    this.bmcs = options.power
      ? createSimBmcs({
          clock,
          random: () => bmcRng.next(),
          machine: (node) =>
            options.nodes.includes(node)
              ? {
                  power: () => this.fleet.powerState(node),
                  setPower: (on) => (on ? this.fleet.powerOn(node) : this.fleet.powerOff(node)),
                }
              : undefined,
          ...(options.power.timing ? { timing: options.power.timing } : {}),
        })
      : null;
    this.#startActuators(options.power?.devices);

    this.fleet = new SimFleet({
      nodes: options.nodes,
      clock,
      cluster: this.cluster,
      timing: policy.agent,
      heartbeatIntervalMs: policy.heartbeat.intervalMs,
      rebootMs: options.rebootMs,
      bootGate: options.bootGate ?? true,
      log: silentLogger,
      transportFor: (node) => this.#transportFor(node),
      onEvent: (e) => this.#onFleetEvent(e),
      ...(options.agentConfigOf ? { agentConfigOf: options.agentConfigOf } : {}),
      ...(options.watchdogDeviceOf ? { watchdogDeviceOf: options.watchdogDeviceOf } : {}),
      ...(options.viewTaken ? { viewTaken: options.viewTaken } : {}),
    });

    const every = (ms: number, fn: () => void) => {
      const slot = this.#intervals.length;
      const tick = () => {
        if (this.#stopped) return;
        fn();
        this.#intervals[slot] = clock.setTimeout(tick, ms);
      };
      this.#intervals[slot] = clock.setTimeout(tick, ms);
    };
    every(options.clusterStepMs ?? 100, () => this.cluster.step(clock.now()));
    every(100, () => void this.#fleet.sample());
    every(Math.max(50, Math.floor(policy.heartbeat.timeoutMs / 5)), () => void this.#detector.tick().catch(() => {}));
  }

  // ------------------------------------------------------------------ the event log and outputs

  publishEvent(event: NodeEvent): void {
    // As FL_EVENTS does: published on fl.evt.<node>, stored under its partition.
    this.events.publish(event.id, event.node, event, Subjects.storedEvent(event.node, LAB_PARTITIONS));
  }

  /** FL_DLQ: recorded, and an invariant violation (nothing in the lab should publish an invalid input). */
  #deadLetters(source: string): DeadLetterSink {
    return async (letter) => {
      if (!this.bus.available) throw new BusUnavailableError(`cannot publish dead letter ${letter.msgID}`);
      if (this.deadLetters.some((d) => d.msgID === letter.msgID)) return;
      this.deadLetters.push({
        source,
        subject: letter.subject,
        msgID: letter.msgID,
        reason: letter.reason,
        error: letter.error.slice(0, 500),
      });
      const node = nodeFromToken(letter.subject.slice(letter.subject.lastIndexOf(".") + 1));
      this.checker.fail(
        "valid-messages",
        this.clock.now(),
        `${letter.msgID} on ${letter.subject} dead-lettered by ${source} (${letter.reason}): ${letter.error.slice(0, 300)}`,
        node,
      );
    };
  }

  #outputs: OutputSink = {
    publish: async (list) => {
      for (const output of list) {
        if (output.type === "command") {
          const { command } = output;
          this.commands.publish(command.id, command.node, command, Subjects.command(ACTUATOR_OF[command.kind], command.node));
          continue;
        }
        const { record } = output;
        const ack = this.audit.publish(record.id, record.node, record, Subjects.audit(record.node));
        if (ack.duplicate) this.checker.audit(record, this.audit.get(ack.seq)?.data);
        else this.#trailAudit(record);
      }
      return list.map(() => null);
    },
  };

  // ------------------------------------------------------------------ the engine process

  /**
   * Starts (or restarts) the engine process: a new core over the persisted snapshots, a new timer
   * service, and the partition loop production runs, over this process's view of the consumer.
   */
  async startEngine(): Promise<void> {
    if (this.#engine || this.#stopped) return;
    const consumer = new SimPartitionConsumer(this.engineConsumer, 2 * DEFAULT_BATCH_SIZE);
    // Once the process has crashed, nothing it still does reaches the world.
    const process = { dead: false };
    const crash = (where: string): never => {
      if (!process.dead) this.#killEngine(where);
      throw new SimulatedCrash(where);
    };
    const alive = () => {
      if (process.dead) throw new SimulatedCrash("the process is dead");
    };
    const crashable: SnapshotStore = {
      get: (node) => this.snapshots.get(node),
      list: () => this.snapshots.list(),
      put: async (snapshot, revision) => {
        alive();
        if (this.#crashPoint === "after-outputs") crash("after publishing outputs, before saving the snapshot");
        const next = await this.snapshots.put(snapshot, revision);
        this.#observeSnapshot(snapshot);
        if (this.#crashPoint === "after-snapshot") crash("after saving the snapshot, before the ack");
        alive();
        return next;
      },
    };
    const outputs: OutputSink = {
      publish: async (list) => {
        alive();
        return this.#outputs.publish(list);
      },
    };
    const core = createEngineCore({
      decider: this.#decider,
      snapshots: crashable,
      outputs,
      onApplied: (result) => this.#onApplied(result),
    });
    const timers = createTimerService({
      clock: this.clock,
      publish: async (event) => this.publishEvent(event),
      tickMs: 100,
    });
    const recovered = await core.recover();
    for (const snapshot of recovered) timers.track(snapshot.node, snapshot.context.timers);
    const loop = createPartitionLoop({
      partition: 0,
      partitions: LAB_PARTITIONS,
      consumer,
      core,
      deadLetters: this.#deadLetters("engine"),
      log: silentLogger,
      stream: Streams.events,
      valid: () => true,
      onBatch: (outcome) => {
        if (!process.dead) trackApplied(outcome, timers, silentLogger);
      },
      sleep: (ms) => new Promise<void>((resolve) => this.clock.setTimeout(resolve, ms)),
    });
    this.#engine = { timers, loop, consumer, process };
    timers.start();
    await loop.start();
  }

  #onApplied(result: FoldResult): void {
    this.stats.foldsApplied += 1;
    this.checker.fold(result);
  }

  /**
   * Crashes the engine at `point` (the next time it gets there, or at once for "idle") and
   * restarts it `downMs` later: its cache and timer service are gone, the snapshots persisted.
   */
  crashEngine(point: EngineCrashPoint, downMs: number): void {
    this.#engineDownMs = downMs;
    if (point === "idle") {
      this.#killEngine("between two events");
      return;
    }
    this.#crashPoint = point;
    // An engine that gets no event for a long while crashes idle instead.
    this.clock.setTimeout(() => {
      if (this.#crashPoint === point) this.#killEngine("between two events (no event reached the crash point)");
    }, 30_000);
  }

  #killEngine(where: string): void {
    const engine = this.#engine;
    this.#crashPoint = null;
    if (!engine) return;
    engine.process.dead = true;
    engine.consumer.kill();
    void engine.loop.stop();
    engine.timers.stop();
    this.#engine = null;
    this.stats.engineCrashes += 1;
    this.#note("*", `engine crashed ${where}; restarts in ${this.#engineDownMs} ms`);
    this.clock.setTimeout(() => {
      this.stats.engineRestarts += 1;
      this.#note("*", "engine restarted from its snapshots");
      void this.startEngine();
    }, this.#engineDownMs);
  }

  get engineUp(): boolean {
    return this.#engine !== null;
  }

  // ------------------------------------------------------------------ fleet view and snapshots

  #observeSnapshot(snapshot: NodeSnapshot): void {
    this.#fleet.onSnapshot(snapshot.node, snapshot.path.split(".")[0]!, snapshot.context.bootId !== null);
    const peerUrl = peerUrlOf(snapshot.context as unknown as Record<string, unknown>);
    if (this.#keeper.observe({ node: snapshot.node, path: snapshot.path, ...(peerUrl !== undefined ? { peerUrl } : {}) }))
      void this.#keeper.sync();
    for (const a of this.#actuators) a.observeEpoch(snapshot.node, snapshot.context.epoch);
    const engineSlots = [...this.snapshots.dump().values()].filter((e) => e.snapshot.context.slot).map((e) => e.snapshot.node);
    this.checker.slots(this.clock.now(), this.#limit, Object.keys(this.budget.current().slots), engineSlots);
  }

  fleetView(): FleetView {
    return this.#fleet.view();
  }

  /** The slots the policy allows for the fleet as it is now (the current membership view). */
  #limitNow(): number {
    const limit = slotLimit(this.policy, this.members.current()?.members.length ?? this.fleet.nodes.length);
    this.#limit = Math.max(this.#limit, limit);
    return limit;
  }

  /**
   * The Node object of a machine is deleted from Kubernetes: the cluster garbage-collects its
   * pods, and the control plane's condition detector reports what it reports for a deleted Node
   * (it leaves the fleet: node.forgotten).
   */
  deleteNode(name: string): void {
    const now = this.clock.now();
    this.cluster.deleteNode(name);
    const detector = createConditionDetector({ rules: defaultConditionRules(60_000) });
    detector.observe(
      {
        name,
        resourceVersion: `${now}`,
        labels: {},
        conditions: [{ type: "Ready", status: "True", lastTransitionTime: now }],
        taints: [],
        unschedulable: false,
      },
      now,
    );
    for (const event of detector.remove(name, now)) this.#publishUntilAvailable(event);
  }

  /**
   * What an operator or the condition detector does when NATS is unreachable: try again (every
   * second) until the event is in the log. The id is the same on every attempt (deduplicated).
   */
  #publishUntilAvailable(event: NodeEvent): void {
    try {
      this.publishEvent(event);
    } catch (err) {
      if (!(err instanceof BusUnavailableError)) throw err;
      this.clock.setTimeout(() => this.#publishUntilAvailable(event), 1_000);
    }
  }

  /** An operator forgets a node (`fenceline forget NODE --reason R`). */
  forget(name: string, reason: string): void {
    const now = this.clock.now();
    this.#publishUntilAvailable(
      createEvent("node.forgotten", { id: `op:forget:${name}:${now}`, node: name, at: now, source: "operator:lab", data: { reason } }),
    );
  }

  /** A new machine joins the fleet (boots; its agent learns the fleet from the control plane). */
  async addMachine(name: string): Promise<void> {
    this.cluster.addNode(name);
    await this.fleet.addMachine(name);
    this.#limitNow();
  }

  /** The engine's recorded state of a node (FL_NODES), as the node state service answers it. */
  stateOf(node: string): string | undefined {
    return this.snapshots.dump().get(node)?.snapshot.path;
  }

  snapshotOf(node: string): NodeSnapshot | undefined {
    return this.snapshots.dump().get(node)?.snapshot;
  }

  // ------------------------------------------------------------------ actuators

  #startActuators(devices: FenceDevicesConfig | undefined): void {
    const { clock, policy } = this;
    // The view the guard decided on (it reads it again on every compare-and-set attempt).
    let decidedOn: FleetView = this.fleetView();
    const view = () => (decidedOn = this.fleetView());
    const guardHandlers = createGuardHandlers({
      store: this.budget,
      view,
      policy,
      clock,
      latestMembershipVersion: async () => this.members.current()?.version ?? 0,
      viewFloor: (node) => this.#fleet.viewFloor(node),
    });
    const acquire = guardHandlers["slot.acquire"]!;
    const observedGuard: Handlers = {
      ...guardHandlers,
      "slot.acquire": async (c, context) => {
        const held = Object.hasOwn(this.budget.current().slots, c.node);
        const outcome = await acquire(c, context);
        if (outcome.ok && !held) {
          this.checker.granted(c.node, clock.now(), decidedOn);
          // A grant must fit the limit of the fleet as it is now.
          this.checker.slots(clock.now(), this.#limitNow(), Object.keys(this.budget.current().slots), []);
        }
        return outcome;
      },
    };
    // The agent's side of `fl.agent.<node>.cmd`: no responders unless its agent is running and
    // reachable; the command and the reply travel as JSON, as on NATS.
    const relay = createAgentRelay(async (c) => {
      const link = this.#links.get(c.node);
      const agentRunning = this.fleet.status(c.node).agent?.running === true;
      if (!link || link.closed || !agentRunning) throw new Error("no responders");
      const reply = await link.sendCommand(c);
      return Buffer.from(JSON.stringify(reply));
    });
    const cores: Array<[Actuator, Handlers]> = [
      ["guard", observedGuard],
      ["cluster", createClusterHandlers(this.#clusterApi(), clock)],
      ["agent", relay],
      ["provisioner", createProvisionerHandlers(this.#provisioner())],
      [
        "fence",
        devices && this.bmcs
          ? createFenceHandlers({
              devices: createFenceDevices(devices, { run: this.bmcs.run, clock, readSecret: async () => SIM_BMC_PASSWORD }),
              clock,
            })
          : {},
      ],
    ];
    for (const [name, handlers] of cores) {
      const actuator = createActuator({ name, handlers, clock });
      this.#actuators.push(actuator);
      const subscription = new SimSubscription(this.actuatorConsumers.get(name)!);
      this.#subscriptions.push(subscription);
      const loop = createCommandLoop({
        actuator,
        publishEvent: async (event) => this.publishEvent(event),
        deadLetters: this.#deadLetters(Consumers.actuator(name)),
        log: silentLogger,
        stream: Streams.commands,
      });
      void loop.run(subscription);
    }
  }

  /** The cluster as the cluster actuator sees it: slow or failing on demand, and watched. */
  #clusterApi(): ClusterApi {
    const cluster = this.cluster;
    const clock: Clock = this.clock;
    const call = async <T>(fn: () => Promise<T>): Promise<T> => {
      const slowMs = slowest(this.apiFaults);
      if (slowMs > 0) await new Promise<void>((resolve) => clock.setTimeout(resolve, slowMs));
      if (failing(this.apiFaults)) throw new Error("simulated API server error: 503 Service Unavailable");
      return fn();
    };
    const moving = (node: string, what: string) => this.checker.movingWorkloads(node, what, clock.now());
    return {
      addTaint: (node: string, taint: Taint) =>
        call(async () => {
          if (taint.key === OUT_OF_SERVICE_TAINT.key) moving(node, "out-of-service taint");
          return cluster.addTaint(node, taint);
        }),
      removeTaint: (node, taint) => call(() => cluster.removeTaint(node, taint)),
      deletePods: (node) =>
        call(async () => {
          moving(node, "pods.delete");
          return cluster.deletePods(node);
        }),
      deleteEvictedPods: (node) =>
        call(async () => {
          moving(node, "workloads.await-gone");
          return cluster.deleteEvictedPods(node);
        }),
      countWorkloads: (node) => call(() => cluster.countWorkloads(node)),
      serverVersion: () => call(() => cluster.serverVersion()),
    };
  }

  #provisioner(): Provisioner {
    const clock = this.clock;
    return {
      run: async (step, node, hostGroup) => {
        const ms = 100 + slowest(this.provisionerFaults);
        await new Promise<void>((resolve) => clock.setTimeout(resolve, ms));
        if (failing(this.provisionerFaults)) return { ok: false, output: `${step} ${node}: simulated failure` };
        return { ok: true, output: `${step} ${node} (host group ${hostGroup}): ok` };
      },
    };
  }

  // ------------------------------------------------------------------ the agents' link

  #transportFor(node: string): MemoryAgentTransport {
    const transport: MemoryAgentTransport = createMemoryAgentTransport({
      controlPlaneReachable: () => this.fleet.reachesControlPlane(node),
      respond: (hb) => this.#respond(hb, transport),
      nodeState: (about) => this.stateOf(about),
    });
    this.#links.set(node, transport);
    return transport;
  }

  /** The heartbeat detector's side of a heartbeat (and its ack), with the message chaos if any. */
  #respond(hb: Heartbeat, transport: MemoryAgentTransport): HeartbeatAck | undefined {
    this.stats.heartbeats += 1;
    // A stopping agent's withdrawal is confirmed once it can be stored (the bus is up).
    const ack = (): HeartbeatAck =>
      heartbeatAck(hb, {
        at: this.clock.now(),
        state: this.stateOf(hb.node),
        membership: this.members.current(),
        withdrawn: hb.stopping === true && this.bus.available,
      });
    const chaos = this.heartbeatChaos;
    if (chaos && !hb.stopping && this.#rng.chance(chaos.delay)) {
      const delay = this.#rng.int(1, chaos.maxDelayMs);
      this.clock.setTimeout(() => {
        this.#heard(hb);
        if (this.fleet.reachesControlPlane(hb.node)) transport.deliverAck(ack());
      }, delay);
      return undefined;
    }
    this.#heard(hb);
    if (chaos && this.#rng.chance(chaos.duplicate)) this.#heard(hb);
    return ack();
  }

  /** The control plane's own connection came back: the detector resyncs, as it does on a NATS reconnect. */
  controlPlaneReconnected(): void {
    this.#detector.resync();
  }

  #heard(hb: Heartbeat): void {
    this.#fleet.onHeartbeat(hb.node, hb.contract?.membershipVersion);
    void this.#detector.onHeartbeat(hb).catch(() => {});
  }

  // ------------------------------------------------------------------ trail

  #note(node: string, what: string): void {
    this.trail.push({ at: this.clock.now(), node, what });
  }

  note(node: string, what: string): void {
    this.#note(node, what);
  }

  /** Machine-level events (crash, boot, self-fence, network change), as they happen. */
  readonly machineListeners: Array<(e: FleetEvent) => void> = [];

  #onFleetEvent(e: FleetEvent): void {
    for (const node of e.node.split(",")) this.trail.push({ at: e.at, node, what: `[machine] ${e.what}` });
    for (const l of this.machineListeners) l(e);
  }

  #trailAudit(r: AuditRecord): void {
    const cmds = r.commands.length > 0 ? ` ⇒ ${r.commands.map((c) => c.kind).join(", ")}` : "";
    const move = r.changed ? `${r.from} → ${r.to}` : `in ${r.to}`;
    this.trail.push({
      at: r.at,
      node: r.node,
      what: `[audit #${r.seq}] ${r.event.type}: ${move} (epoch ${r.epoch})${cmds}${r.reason ? ` — ${r.reason}` : ""}`,
    });
  }

  // ------------------------------------------------------------------ lifecycle

  async start(): Promise<void> {
    await this.startEngine();
    await this.fleet.start();
  }

  /** Stops every periodic activity (the fleet, the engine, the ticks). */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const handle of this.#intervals) this.clock.clearTimeout(handle);
    if (this.#engine) {
      this.#engine.process.dead = true;
      this.#engine.consumer.kill();
      void this.#engine.loop.stop();
      this.#engine.timers.stop();
    }
    for (const subscription of this.#subscriptions) subscription.stop();
    await this.fleet.stop();
  }
}
