import { checkFenceDevices, type FenceCheckAnswer } from "@fenceline/actuators";
import { parse, table, UsageError } from "@fenceline/command-line";
import { loadDevices, nodesNamedIn, type KubeSource } from "../fence-devices.js";

const USAGE = `usage: fenceline fence-check --fence-devices devices.json [--node NODE[=HOSTGROUP]]...
                           [--server nats://host:port] [--kubeconfig FILE | --in-cluster]
                           [--timeout 30s] [--json]

Runs the fence agent's \`status\` action against every fence device configured for every node and
prints each answer (power on/off, or why it failed: unreachable, auth, timeout…). It changes no
power state. Exit status 1 when any device did not answer.
  --node NODE[=GROUP]   check this node (repeatable; GROUP is its host group). Default: every node
                        the devices file names, plus, with --server, every node the engine knows
                        (with the host group its agent reports)
  --server URL          read the fleet's nodes from NATS (or NATS_URL)
  --kubeconfig/--in-cluster  read passwords given as Kubernetes Secrets
  --json                one JSON object per answer, in an array`;

export async function fenceCheckCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      "fence-devices": { type: "string" },
      node: { type: "string", multiple: true },
      server: { type: "string" },
      kubeconfig: { type: "string" },
      "in-cluster": { type: "boolean" },
      timeout: { type: "string" },
      json: { type: "boolean" },
    },
    USAGE,
  );
  if (values.help) return (console.log(USAGE), 0);
  const file = values["fence-devices"] as string | undefined;
  if (!file) throw new UsageError(`--fence-devices FILE is required\n\n${USAGE}`);
  if (values.kubeconfig && values["in-cluster"]) throw new UsageError("give --kubeconfig FILE or --in-cluster, not both");
  const kube: KubeSource | null = values.kubeconfig
    ? { kubeconfig: values.kubeconfig as string }
    : values["in-cluster"]
      ? { inCluster: true }
      : null;
  const { Duration } = await import("@fenceline/contracts");
  const timeout = Duration.safeParse(values.timeout ?? "30s");
  if (!timeout.success) throw new UsageError(`--timeout: a duration like 250ms, 5s, 2m (got "${String(values.timeout)}")`);

  const { config, devices } = await loadDevices(file, { kube });
  const targets = new Map<string, string | undefined>();
  const given = (values.node as string[] | undefined) ?? [];
  for (const spec of given) {
    const [node, hostGroup] = spec.split("=", 2);
    if (!node) throw new UsageError(`--node: a node name, optionally =HOSTGROUP (got "${spec}")`);
    targets.set(node, hostGroup || undefined);
  }
  if (given.length === 0) {
    for (const node of nodesNamedIn(config)) targets.set(node, undefined);
    const url = (values.server as string | undefined) ?? process.env.NATS_URL;
    if (url) {
      const [{ connectNats }, { readNodeSnapshots }] = await Promise.all([import("@fenceline/bus"), import("@fenceline/read-model")]);
      const nc = await connectNats(url, { name: "fenceline-cli" });
      const snapshots = await readNodeSnapshots(nc, { onInvalid: (_node, err) => console.error(`fenceline: ${err.message}`) }).finally(() =>
        nc.close(),
      );
      for (const s of snapshots) targets.set(s.node, s.context.hostGroup ?? targets.get(s.node));
    }
  }
  if (targets.size === 0) throw new UsageError("no node to check: the devices file names none; give --node NODE[=HOSTGROUP] or --server");

  const answers = await checkFenceDevices(
    devices,
    [...targets].map(([node, hostGroup]) => ({ node, ...(hostGroup ? { hostGroup } : {}) })),
    { timeoutMs: timeout.data },
  );
  const uncovered = [...targets.keys()].filter((node) => !answers.some((a) => a.node === node));
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ answers, uncovered }, null, 2)}\n`);
  } else {
    console.log(table(answers.map(row), ["NODE", "DEVICE", "ANSWER", "TIME", "DETAIL"]));
    if (uncovered.length > 0) console.log(`no fence device configured for: ${uncovered.join(", ")}`);
    const failed = answers.filter((a) => !a.ok).length;
    console.log(`${answers.length - failed} of ${answers.length} answered${failed > 0 ? `; ${failed} did not` : ""}`);
  }
  return answers.every((a) => a.ok) ? 0 : 1;
}

function row(a: FenceCheckAnswer): string[] {
  const time = `${(a.durationMs / 1_000).toFixed(1)} s`;
  return a.ok ? [a.node, a.device, a.power, time, ""] : [a.node, a.device, `ERROR ${a.error}`, time, a.message];
}
