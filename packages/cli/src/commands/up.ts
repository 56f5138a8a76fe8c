import { hostname } from "node:os";
import { connectNats, createLogger, startNatsServer, type Logger, type NatsServer } from "@fenceline/bus";
import { checkFenceDevices, createCommandProvisioner } from "@fenceline/actuators";
import { Duration, ErrorCode, FencelineError, POWER_METHOD, WATCHDOG_METHOD, type Policy } from "@fenceline/contracts";
import { DEFAULT_EXCLUDE_LABEL, defaultConditionRules, labelMatcher } from "@fenceline/detectors";
import { intOption, parse, UsageError } from "@fenceline/command-line";
import { startControlPlane } from "@fenceline/control-plane";
import { createDryRunCluster, createDryRunProvisioner } from "@fenceline/control-plane";
import { loadPolicy } from "../policy-file.js";
import { loadDevices, nodesNamedIn, type KubeSource } from "../fence-devices.js";
import { startMetricsEndpoint } from "@fenceline/engine";

const USAGE = `usage: fenceline up [--server nats://host:port] [--policy policy.json] [--store DIR]
                    [--provision-cleanup CMD --provision-run CMD]
                    [--kubeconfig FILE | --in-cluster] [--node-selector SEL]
                    [--exclude-label KEY] [--condition-duration 30s]
                    [--metrics-port 9464] [--metrics-host 0.0.0.0] [--instance-id ID]
                    [--fence-devices devices.json] [--stream-replicas N]

Runs the control plane in the foreground: JetStream streams (provisioned idempotently), the
engine, the heartbeat detector, the fleet guard and the actuators. Without --server (or
NATS_URL) it starts its own nats-server on a free loopback port (store in --store, or a
temporary directory). Stop with Ctrl-C.
  --provision-cleanup/--provision-run  shell commands for re-provisioning; {node} and
                                       {hostGroup} are substituted
  --kubeconfig FILE      act on this Kubernetes cluster (taints, pod deletion, Events on the
                         Node) and watch its node conditions; --in-cluster uses the pod's
                         service account. Without either, cluster actions are a logged dry run.
  --node-selector SEL    only nodes matching this label selector (e.g. "!node-role.kubernetes.io/control-plane")
  --exclude-label KEY    a node labelled KEY=true is not remediated (default ${DEFAULT_EXCLUDE_LABEL})
  --condition-duration D Ready=False/Unknown must last this long before it counts (default 30s;
                         the policy's unhealthyDurationMs then also counts from its start)
  --metrics-port N       serve Prometheus metrics on http://HOST:N/metrics (default 9464, 0: off;
                         --metrics-host defaults to 0.0.0.0)
  --instance-id ID       this engine's name in the partition leases (default FENCELINE_INSTANCE_ID,
                         else host-pid); several \`up\` on one fleet share its partitions; a restart
                         with the same id resumes at once, with a new one after the lease (10 s)
  --fence-devices FILE   power fencing: the fence devices (BMCs, PDUs) and how to reach each node's
                         (docs/fencing.md); runs the fence actuator, and at start-up reads every
                         configured node's power state once and logs each answer (fenceline fence-check)
  --stream-replicas N    replicas of every stream, consumer and bucket, 1 to 5 (default: 1 on a
                         single nats-server, 3 on a cluster, never fewer than FL_EVENTS already has);
                         provisioning waits up to 60 s for the cluster to place them`;

export async function upCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      server: { type: "string" },
      policy: { type: "string" },
      store: { type: "string" },
      "provision-cleanup": { type: "string" },
      "provision-run": { type: "string" },
      kubeconfig: { type: "string" },
      "in-cluster": { type: "boolean" },
      "node-selector": { type: "string" },
      "exclude-label": { type: "string" },
      "condition-duration": { type: "string" },
      "metrics-port": { type: "string" },
      "metrics-host": { type: "string" },
      "instance-id": { type: "string" },
      "fence-devices": { type: "string" },
      "stream-replicas": { type: "string" },
    },
    USAGE,
  );
  if (values.help) return (console.log(USAGE), 0);
  const replicas = streamReplicas(values["stream-replicas"]);
  const log = createLogger("fenceline");
  const policy = loadPolicy(values.policy as string | undefined);
  const kube = kubernetesOptions(values);
  // Loaded only when needed: @kubernetes/client-node takes about a second to import.
  const k8s = kube ? await import("@fenceline/kubernetes") : undefined;
  const kubeConfig = kube && k8s ? k8s.loadKubeConfig(kube.source) : undefined;
  const fencing = await fenceDevicesOf(values["fence-devices"] as string | undefined, policy, kube?.source ?? null, log);
  let server: NatsServer | undefined;
  let url = (values.server as string | undefined) ?? process.env.NATS_URL;
  if (!url) {
    server = await startNatsServer({ ...(values.store ? { storeDir: values.store as string } : {}), log });
    url = server.url;
    log.info({ url, store: server.storeDir }, "started nats-server");
  }
  const nc = await connectNats(url, { name: "fenceline-up" });
  const metrics = await startMetricsEndpoint({
    nc,
    port: values["metrics-port"] as string | undefined,
    host: values["metrics-host"] as string | undefined,
    log,
  });
  const cleanup = values["provision-cleanup"] as string | undefined;
  const provision = values["provision-run"] as string | undefined;
  const control = await startControlPlane({
    nc,
    policy,
    log,
    cluster:
      k8s && kubeConfig
        ? k8s.createKubernetesCluster({ kubeConfig, log: log.child({ component: "kubernetes" }) })
        : createDryRunCluster(log),
    provisioner: cleanup && provision ? createCommandProvisioner({ cleanup, provision }) : createDryRunProvisioner(log),
    onApplied: metrics.onApplied,
    ...(fencing ? { fenceDevices: fencing.devices } : {}),
    ...(values["instance-id"] ? { instanceId: values["instance-id"] as string } : {}),
    ...(replicas !== undefined ? { replicas } : {}),
    ...(kube && k8s && kubeConfig
      ? {
          nodeEvents: k8s.createNodeEventRecorder({
            kubeConfig,
            instance: (values["instance-id"] as string | undefined) ?? `${hostname()}-${process.pid}`,
            log: log.child({ component: "node-events" }),
          }),
          conditions: {
            watcher: k8s.createNodeWatcher({
              kubeConfig,
              log: log.child({ component: "node-watch" }),
              ...(kube.selector ? { labelSelector: kube.selector } : {}),
            }),
            rules: defaultConditionRules(kube.durationMs),
            ...(kube.selector ? { selector: kube.selector } : {}),
            ...(kube.excludeLabel ? { excludeLabel: kube.excludeLabel } : {}),
          },
        }
      : {}),
  });
  if (kube)
    log.info(
      { server: kubeConfig?.getCurrentCluster()?.server, selector: kube.selector, conditionDurationMs: kube.durationMs },
      "acting on Kubernetes",
    );
  metrics.started(control.engine.core.snapshots(), control.fleetStatus, control.engine);
  log.info({ url, policy: policy.version, metrics: metrics.url }, "fenceline is up");
  if (fencing) void fencing.check();
  console.error(`fenceline: up on ${url} (Ctrl-C to stop)`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  console.error("fenceline: stopping");
  await control.stop();
  await metrics.stop();
  await nc.drain();
  await server?.stop();
  return 0;
}

/** JetStream places at most five replicas of a stream. */
const MAX_STREAM_REPLICAS = 5;

function streamReplicas(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = intOption(value, "stream-replicas", 1, 1, USAGE);
  if (n > MAX_STREAM_REPLICAS)
    throw new UsageError(`--stream-replicas must be at most ${MAX_STREAM_REPLICAS} (JetStream's limit)\n\n${USAGE}`);
  return n;
}

/**
 * The fence devices of `--fence-devices`, checked against the policy: a policy that fences by
 * power needs devices, and devices no policy uses are worth a warning.
 */
async function fenceDevicesOf(file: string | undefined, policy: Policy, kube: KubeSource | null, log: Logger) {
  const policyUsesThem = policy.fencing.fenceAgent;
  if (!file) {
    if (policyUsesThem)
      throw new UsageError(
        "the policy's fencing levels power nodes off (a level names a fence device or power) but no --fence-devices file was given",
      );
    return null;
  }
  const { config, devices } = await loadDevices(file, { kube, log: log.child({ component: "fence-devices" }) });
  const named = new Set(Object.keys(config.devices));
  const topologies = [policy.fencing.levels, ...Object.values(policy.fencing.hostGroups), ...Object.values(policy.fencing.nodes)];
  const unknown = [...new Set(topologies.flat().flatMap((l) => l.methods))].filter(
    (m) => m !== WATCHDOG_METHOD && m !== POWER_METHOD && !named.has(m),
  );
  if (unknown.length > 0) {
    throw new FencelineError(
      ErrorCode.InvalidPolicy,
      `the policy's fencing levels name ${unknown.join(", ")}, which ${file} does not define (devices: ${[...named].join(", ") || "none"})`,
    );
  }
  if (!policyUsesThem) log.warn({ file }, "fence devices configured, but no fencing level of the policy powers nodes off");
  const nodes = nodesNamedIn(config);
  return {
    devices,
    /** The start-up preflight: each configured node's power state, read once and logged. */
    async check() {
      const answers = await checkFenceDevices(
        devices,
        nodes.map((node) => ({ node })),
      );
      for (const a of answers) {
        if (a.ok)
          log.info(
            { node: a.node, device: a.device, power: a.power, ms: a.durationMs },
            `fence device ${a.device} answers for ${a.node}: power ${a.power}`,
          );
        else
          log.error(
            { node: a.node, device: a.device, error: a.error, ms: a.durationMs },
            `fence device ${a.device} does not answer for ${a.node}: ${a.message}`,
          );
      }
    },
  };
}

/** The Kubernetes flags of `up`, checked; null when no cluster is configured. */
function kubernetesOptions(values: Record<string, unknown>) {
  const file = values.kubeconfig as string | undefined;
  const inCluster = Boolean(values["in-cluster"]);
  if (file && inCluster) throw new UsageError("give --kubeconfig FILE or --in-cluster, not both");
  const kubeOnly = ["node-selector", "exclude-label", "condition-duration"].filter((k) => values[k] !== undefined);
  if (!file && !inCluster) {
    if (kubeOnly.length > 0) throw new UsageError(`--${kubeOnly[0]} needs --kubeconfig FILE or --in-cluster`);
    return null;
  }
  const duration = Duration.safeParse(values["condition-duration"] ?? "30s");
  if (!duration.success)
    throw new UsageError(`--condition-duration: a duration like 250ms, 5s, 2m or 1h (got "${String(values["condition-duration"])}")`);
  const selector = values["node-selector"] as string | undefined;
  if (selector) {
    try {
      labelMatcher(selector);
    } catch (err) {
      throw new UsageError(`--node-selector: ${(err as Error).message}`);
    }
  }
  return {
    source: file ? { kubeconfig: file } : ({ inCluster: true } as const),
    selector,
    excludeLabel: values["exclude-label"] as string | undefined,
    durationMs: duration.data,
  };
}
