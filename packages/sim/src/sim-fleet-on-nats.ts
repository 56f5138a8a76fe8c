import { createNatsAgentTransport } from "@fenceline/agent";
import { connectNats, type Logger } from "@fenceline/bus";
import { systemClock, type Policy } from "@fenceline/contracts";
import { SimFleet, type FleetOptions, type Machines } from "./fleet.js";

export type SimFleetOnNatsOptions = Pick<FleetOptions, "nodes" | "rebootMs" | "hostGroupOf" | "checksumsOf" | "onEvent" | "bootGate"> & {
  /** The nats-server the agents heartbeat to, all of them over one connection. */
  url: string;
  /** That connection's name. */
  connectionName: string;
  /** The machines' workloads: the cluster model (stepped here) or simulated kubelets on a real API server (they run on their own). */
  cluster: Machines & { step?(now: number): void };
  /** Agent timings and heartbeat interval come from here. */
  policy: Pick<Policy, "agent" | "heartbeat">;
  log: Logger;
  /** How often the cluster model steps on the wall clock (default 25 ms). */
  stepMs?: number;
  /** Runs after each step (invariant checks, progress). */
  onStep?: (now: number, fleet: SimFleet) => void;
};

export type SimFleetOnNats = {
  fleet: SimFleet;
  /** Stops stepping the cluster, then the fleet, then closes the agents' connection. */
  stop(): Promise<void>;
};

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A simulated fleet whose machines run the real agent over real NATS, on the wall clock, with
 * the cluster model stepped alongside. Returns once every machine has booted.
 */
export async function startSimFleetOnNats(options: SimFleetOnNatsOptions): Promise<SimFleetOnNats> {
  const { url, connectionName, cluster, policy, log, stepMs = 25, onStep, ...machines } = options;
  const agentsNc = await connectNats(url, { name: connectionName });
  const fleet = new SimFleet({
    ...machines,
    clock: systemClock,
    cluster,
    timing: policy.agent,
    heartbeatIntervalMs: policy.heartbeat.intervalMs,
    log,
    transportFor: (node) => createNatsAgentTransport({ nc: agentsNc, node, log }),
  });

  let stepping = true;
  const stepper = (async () => {
    while (stepping) {
      const now = Date.now();
      cluster.step?.(now);
      onStep?.(now, fleet);
      await sleep(stepMs);
    }
  })();
  const stop = async () => {
    stepping = false;
    await stepper;
    await fleet.stop();
    await agentsNc.drain().catch(() => {});
  };

  try {
    await fleet.start();
  } catch (err) {
    await stop();
    throw err;
  }
  return { fleet, stop };
}
