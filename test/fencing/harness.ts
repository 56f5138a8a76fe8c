import { systemClock, type PolicyInput } from "@fenceline/contracts";
import { InMemoryCluster, startKubernetesApiServer, type IpmiSimBmc, type KubernetesApiServer } from "@fenceline/sim";
import { startUpLab, type UpLab } from "../support/up-lab.js";

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export type PowerLab = UpLab & {
  cluster: InMemoryCluster;
  api: KubernetesApiServer;
  nodes: string[];
};

export type PowerLabOptions = {
  nodes?: string[];
  policy: PolicyInput;
  /** The fence devices file, given each node's BMC. */
  devices: (bmcs: Map<string, IpmiSimBmc>) => unknown;
  statefulSets?: Record<string, number>;
  rebootMs?: number;
};

/**
 * The up lab (test/support/up-lab.ts) with a BMC per machine, on the simulated Kubernetes API
 * server: `fenceline up --kubeconfig --fence-devices` as a user runs it, against the cluster model.
 * Returned once every node is healthy.
 */
export async function startPowerLab(options: PowerLabOptions): Promise<PowerLab> {
  const nodes = options.nodes ?? ["w-1", "w-2", "w-3", "w-4", "w-5"];
  const cluster = new InMemoryCluster({ clock: systemClock, nodes });
  for (const [name, replicas] of Object.entries(options.statefulSets ?? { db: 1 })) cluster.addStatefulSet(name, replicas);
  const api = await startKubernetesApiServer({ cluster, nodeMonitorGracePeriodMs: 500 });
  let lab: UpLab;
  try {
    lab = await startUpLab({
      name: "power-lab",
      nodes,
      cluster,
      policy: options.policy,
      upArgs: (dir) => ["--kubeconfig", api.writeKubeconfig(dir)],
      devices: options.devices,
      bootGate: true,
      ...(options.rebootMs !== undefined ? { rebootMs: options.rebootMs } : {}),
      ready: {
        what: "every node healthy",
        check: async (l) => {
          const s = await l.states();
          return nodes.every((n) => s.get(n) === "healthy");
        },
      },
    });
  } catch (err) {
    await api.stop();
    throw err;
  }
  return {
    ...lab,
    cluster,
    api,
    nodes,
    async stop() {
      await lab.stop();
      await api.stop();
    },
  };
}

/** The fence_ipmilan device of every node's BMC (lanplus, cipher 3, the BMC's password file). */
export function ipmiDevices(bmcs: Map<string, IpmiSimBmc>, extra: Record<string, unknown> = {}) {
  return {
    devices: {
      ipmi: {
        agent: "fence_ipmilan",
        params: { lanplus: true, cipher: 3, power_wait: 0 },
        nodes: Object.fromEntries(
          [...bmcs].map(([node, bmc]) => [
            node,
            { params: { ip: bmc.host, ipport: bmc.port, username: bmc.user }, password: { file: bmc.passwordFile } },
          ]),
        ),
        timeoutMs: "8s",
        retries: 1,
        retryDelayMs: "500ms",
        confirmWithinMs: "10s",
        pollMs: "250ms",
        ...extra,
      },
    },
  };
}
