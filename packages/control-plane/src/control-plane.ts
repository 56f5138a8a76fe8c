import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { systemClock, type Clock, type ClusterApi, type Policy, type Provisioner } from "@fenceline/contracts";
import type { Logger } from "@fenceline/bus";
import { Buckets, fittingReplicas, provisionStreams } from "@fenceline/streams";
import { runEngine, type FleetStatus, type FoldResult, type RunningEngine } from "@fenceline/engine";
import { runConditionDetector, runHeartbeatDetector, runMembershipKeeper, type ConditionRule } from "@fenceline/detectors";
import type { NodeEventRecorder, NodeWatcher } from "@fenceline/kubernetes";
import { startNodeEvents } from "./node-events.js";
import {
  createActuator,
  createAgentRelayHandlers,
  createClusterHandlers,
  createFenceHandlers,
  createGuardHandlers,
  createKvBudgetStore,
  createProvisionerHandlers,
  minDipMsOf,
  remediationSlotsAllowed,
  runActuator,
  watchFleetView,
  type ActuatorCore,
  type FenceDevice,
} from "@fenceline/actuators";

export type ControlPlaneOptions = {
  nc: NatsConnection;
  policy: Policy;
  log: Logger;
  cluster: ClusterApi;
  provisioner: Provisioner;
  /** Fence devices (BMCs, PDUs…) of the fence actuator; without any, no fence actuator runs. */
  fenceDevices?: readonly FenceDevice[];
  clock?: Clock;
  /** Replicas of the streams and buckets (default: what fits the cluster, `fittingReplicas`). */
  replicas?: number;
  /**
   * The engine instance's id in the partition leases (default: FENCELINE_INSTANCE_ID, else
   * host-pid). Several control planes share a fleet, each with its own (docs/scale.md).
   */
  instanceId?: string;
  /** Called after each event the engine applied (metrics). */
  onApplied?: (result: FoldResult) => void;
  /** Kubernetes node conditions as a second signal (the node watch of a real or simulated API server). */
  conditions?: { watcher: NodeWatcher; rules: ConditionRule[]; selector?: string; excludeLabel?: string };
  /** Each step that acts on a node also becomes a Kubernetes Event on its Node object. */
  nodeEvents?: NodeEventRecorder;
};

export type ControlPlane = {
  engine: RunningEngine;
  /** The fleet guard's view and the slots held now (the fleet gauges of the metrics). */
  fleetStatus(): Promise<FleetStatus>;
  stop(): Promise<void>;
};

/** How often `workloads.await-gone` checks (and force-deletes what the taint evicted) on a live cluster. */
const AWAIT_GONE_POLL_MS = 100;

/**
 * The actuators of a control plane: the fleet guard (on the fleet view and the KV budget it
 * decides on), the cluster, the agent relay, the provisioner, and the fence actuator when fence
 * devices are given. Not running yet: `runActuator` each on a connection.
 */
export async function createActuators(
  options: Pick<ControlPlaneOptions, "nc" | "policy" | "log" | "cluster" | "provisioner" | "fenceDevices"> & { clock: Clock },
) {
  const { nc, policy, log, clock } = options;
  const actuators: ActuatorCore[] = [];
  const fleet = await watchFleetView(nc, {
    heartbeatTimeoutMs: policy.heartbeat.timeoutMs,
    minDipMs: minDipMsOf(policy),
    now: () => clock.now(),
    onSnapshot: (node, epoch) => actuators.forEach((a) => a.observeEpoch(node, epoch)),
    log: log.child({ component: "fleet-view" }),
  });
  const budget = createKvBudgetStore(await new Kvm(nc).open(Buckets.fleet));

  actuators.push(
    createActuator({
      name: "guard",
      clock,
      handlers: createGuardHandlers({
        store: budget,
        view: () => fleet.view(),
        policy,
        clock,
        latestMembershipVersion: () => fleet.latestMembershipVersion(),
        viewFloor: (node) => fleet.viewFloor(node),
      }),
    }),
    // The out-of-service step checks every 100 ms: the taint eviction controller marks the pods
    // for deletion about 0.1 s after the taint (measured on the real control plane), and each
    // check's force-delete is what lets the StatefulSet controller re-create the pod.
    createActuator({ name: "cluster", clock, handlers: createClusterHandlers(options.cluster, clock, { pollMs: AWAIT_GONE_POLL_MS }) }),
    createActuator({ name: "agent", clock, handlers: createAgentRelayHandlers(nc) }),
    createActuator({ name: "provisioner", clock, handlers: createProvisionerHandlers(options.provisioner) }),
  );
  if (options.fenceDevices && options.fenceDevices.length > 0) {
    actuators.push(createActuator({ name: "fence", clock, handlers: createFenceHandlers({ devices: options.fenceDevices, clock }) }));
  }
  return { actuators, fleet, budget };
}

/** Everything but the agents: streams, engine, membership keeper, heartbeat detector, fleet guard and actuators. */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const { nc, policy, log } = options;
  const clock = options.clock ?? systemClock;
  const replicas = options.replicas ?? (await fittingReplicas(nc));
  const report = await provisionStreams(nc, { log, replicas });
  log.info({ ...report, replicas }, "streams provisioned");

  const { actuators, fleet, budget } = await createActuators({ ...options, clock });

  const engine = await runEngine({
    nc,
    policy,
    log: log.child({ component: "engine" }),
    clock,
    ...(options.onApplied ? { onApplied: options.onApplied } : {}),
    ...(options.instanceId ? { instanceId: options.instanceId } : {}),
  });
  // Before the detector, so its first acks already carry a view.
  const membership = await runMembershipKeeper({ nc, witness: policy.fleet.witness, log });
  const detector = await runHeartbeatDetector({
    nc,
    timeoutMs: policy.heartbeat.timeoutMs,
    log: log.child({ component: "heartbeat-detector" }),
    clock,
  });
  const conditions = options.conditions
    ? await runConditionDetector({ nc, ...options.conditions, log: log.child({ component: "condition-detector" }), clock })
    : undefined;
  const nodeEvents = options.nodeEvents
    ? startNodeEvents({ nc, recorder: options.nodeEvents, log: log.child({ component: "node-events" }) })
    : undefined;
  const runners = actuators.map((actuator) => runActuator({ nc, actuator, log: log.child({ component: `actuator-${actuator.name}` }) }));

  return {
    engine,
    async fleetStatus() {
      const { fleetSize, healthy } = fleet.view();
      const { budget: held } = await budget.read();
      return { fleetSize, healthy, slotsUsed: Object.keys(held.slots).length, slotsAllowed: remediationSlotsAllowed(policy, fleetSize) };
    },
    async stop() {
      await Promise.all(runners.map((r) => r.stop()));
      await detector.stop();
      await membership.stop();
      await conditions?.stop();
      await nodeEvents?.stop();
      await engine.stop();
      await fleet.stop();
    },
  };
}
