import { Policy, resolveLimit, safeTimeOf } from "@fenceline/contracts";
import { UNFENCE_RETRY } from "@fenceline/statecharts";

/**
 * The lab's policy: the demo's short timings (seconds instead of tens of seconds, so a seed
 * simulates a couple of minutes quickly), a fencing timeout of 30 s instead of 10 min (so a node
 * that can never be confirmed fenced reaches the operator state within the run), and a fleet
 * limit, so the guard's `maxUnhealthy` is exercised. The safe time is computed exactly as in
 * production: 1 s control-plane timeout + 0.5 s peer round + 1.5 s watchdog + 1 s margin = 4 s.
 */
export const LAB_POLICY: Policy = Policy.parse({
  version: "lab-1",
  heartbeat: { intervalMs: 200, timeoutMs: 1_000 },
  unhealthyDurationMs: 2_000,
  agent: { controlPlaneTimeoutMs: 1_000, peerRoundMs: 500, watchdogTimeoutMs: 1_500, marginMs: 1_000 },
  fencing: { timeoutMs: 30_000 },
  remediation: [
    { strategy: "Automatic", timeoutMs: 10_000 },
    { strategy: "ResourceDeletion", timeoutMs: 10_000 },
  ],
  rejoin: { reprovisionTimeoutMs: 10_000, reprovisionAttempts: 3, reprovisionBackoffMs: 500 },
  fleet: { retryMs: 1_000, maxUnhealthy: "40%" },
  commandTimeoutMs: 10_000,
});

/**
 * The agent configuration every lab machine runs by default: deploy/agent.json — the file the
 * DaemonSet ships, with its `__NODE_NAME__` and `__NODE_IP__` — with the lab policy's timing
 * instead of the production one (a test holds the two files together). No list of nodes: each
 * agent learns the fleet from the lab's control plane. `fenceline chaos --agent-config FILE`
 * runs another file.
 */
export const LAB_AGENT_CONFIG = `${JSON.stringify(
  {
    node: "__NODE_NAME__",
    nats: { url: "nats://nats.fenceline.svc:4222" },
    peerListen: { host: "0.0.0.0", port: 9797 },
    peerAdvertiseUrl: "http://__NODE_IP__:9797",
    watchdog: { path: "/dev/watchdog" },
    heartbeatInterval: LAB_POLICY.heartbeat.intervalMs,
    timing: LAB_POLICY.agent,
    services: { kubelet: { files: ["/host/etc/kubernetes/kubelet.conf"] } },
    hostGroup: "workers",
    stateDir: "/var/lib/fenceline/agent",
    logLevel: "info",
  },
  null,
  2,
)}\n`;

/** The address a lab machine has (its node number in the last two octets), for `__NODE_IP__`. */
export function labNodeIp(node: string): string {
  const n = Number(/(\d+)$/.exec(node)?.[1] ?? 0);
  return `10.77.${Math.floor(n / 250)}.${(n % 250) + 1}`;
}

/**
 * The same policy fencing by power first: [ipmi] (the simulated BMCs, `simBmcDevices`) with a
 * 20 s timeout, then [watchdog].
 */
export function withPowerLevels(policy: Policy): Policy {
  const { timeoutMs, watchdogKinds, unfence } = policy.fencing;
  return Policy.parse({
    ...policy,
    version: `${policy.version}+power`,
    fencing: { levels: [{ methods: ["ipmi"], timeoutMs: 20_000 }, ["watchdog"]], timeoutMs, watchdogKinds, unfence },
  });
}

/** The longest wait between two tries to power a fenced node on again (the machine's unfence backoff). */
export const UNFENCE_RETRY_MAX_MS = UNFENCE_RETRY.maxMs;

/** The simulated JetStream's ack wait in the lab (30 s in production, scaled like the policy). */
export const LAB_ACK_WAIT_MS = 5_000;

/** How many nodes may hold a remediation slot at once in a fleet of `fleetSize`. */
export function slotLimit(policy: Policy, fleetSize: number): number {
  return policy.fleet.maxUnhealthy === undefined ? fleetSize : resolveLimit(policy.fleet.maxUnhealthy, fleetSize, "down");
}

export type ConvergenceBound = {
  /** The longest one node may take, once every fault has healed, to be healthy or in the operator state. */
  perNodeMs: number;
  /** How many nodes may have to queue for a slot one after the other. */
  waves: number;
  totalMs: number;
  explanation: string;
};

/**
 * The convergence bound, from the policy: after the last fault heals, a node may still have to
 * go through every step the lifecycle allows, each at its longest:
 *
 *   settle      the bus redelivers what a dead engine or a lost delivery left behind (2 ack waits)
 *   + detect    heartbeat timeout + unhealthy duration (a node that only now looks unhealthy)
 *   + fence     the fencing timeout (no confirmation at all → operator)
 *   + reboot    the longest reboot (a watchdog reset during fencing)
 *   + remediate every remediation step's timeout, one after the other
 *   + rejoin    every re-provisioning attempt's timeout plus the backoffs between them
 *   + untaint   a command timeout (the last taint removal retried until it lands)
 *
 * A node refused a slot waits for a node that holds one, so the per-node bound is multiplied by
 * the number of "waves" the fleet limit allows: ceil(faulted nodes / slot limit).
 */
export function convergenceBound(
  policy: Policy,
  options: { ackWaitMs: number; maxRebootMs: number; faultedNodes: number; fleetSize: number },
): ConvergenceBound {
  const parts: Array<[number, string]> = [
    [2 * options.ackWaitMs, "2 ack waits"],
    [policy.heartbeat.timeoutMs + policy.unhealthyDurationMs, "detection"],
    [Math.max(policy.fencing.timeoutMs, safeTimeOf(policy)), "fencing timeout"],
    [options.maxRebootMs, "reboot"],
    [policy.remediation.reduce((sum, s) => sum + s.timeoutMs, 0), "remediation steps"],
    [
      policy.rejoin.reprovisionAttempts * policy.rejoin.reprovisionTimeoutMs +
        Array.from({ length: policy.rejoin.reprovisionAttempts - 1 }, (_, i) => policy.rejoin.reprovisionBackoffMs * 2 ** i).reduce(
          (a, b) => a + b,
          0,
        ),
      "re-provisioning",
    ],
    [policy.commandTimeoutMs, "untaint"],
    // Power fencing: the power-on after remediation, tried again until the BMC takes it.
    ...(policy.fencing.fenceAgent ? ([[UNFENCE_RETRY_MAX_MS + policy.commandTimeoutMs, "unfence"]] as Array<[number, string]>) : []),
  ];
  const perNodeMs = parts.reduce((sum, [ms]) => sum + ms, 0);
  const waves = Math.max(1, Math.ceil(Math.max(1, options.faultedNodes) / Math.max(1, slotLimit(policy, options.fleetSize))));
  return {
    perNodeMs,
    waves,
    totalMs: perNodeMs * waves,
    explanation: `(${parts.map(([ms, what]) => `${ms / 1000}s ${what}`).join(" + ")} = ${perNodeMs / 1000}s) × ${waves} wave(s)`,
  };
}
