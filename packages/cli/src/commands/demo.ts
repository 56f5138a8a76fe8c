import { writeFileSync } from "node:fs";
import { parse, table, UsageError } from "@fenceline/command-line";
import { runDemo, type DemoSummary } from "../demo/run-demo.js";
import { checkScenario, SCENARIOS } from "../demo/scenarios.js";
import { loadPolicy } from "../policy-file.js";
import { DEMO_POLICY } from "@fenceline/contracts";
import { startUiAt } from "./ui.js";

const USAGE = `usage: fenceline demo [--scenario NAME] [--nodes N] [--json] [--hold] [--endpoints FILE]
                      [--policy policy.json] [--server nats://host:port] [--kubernetes simulated|real]

Starts a local nats-server (own port, own temporary store), the control plane and a simulated
fleet running stateful workloads, injects faults, and prints what happens and a summary.
Exits non-zero when a faulted node did not get back to healthy or a workload ran twice.
  --kubernetes K    simulated (default): the simulated API server and cluster model, quick;
                    real: a real Kubernetes 1.37 control plane (etcd, kube-apiserver,
                    kube-controller-manager, kube-scheduler; built from Go modules on first
                    use, then cached) whose nodes are the simulated machines' kubelets, the
                    workloads in namespace "demo" (StatefulSets db and queue with ReadWriteOnce
                    CSI volumes, Deployment web, DaemonSet node-agent)
  --scenario NAME   ${Object.keys(SCENARIOS).join(", ")} (default: default)
  --nodes N         fleet size (default 12)
  --json            print only a JSON summary on stdout
  --hold            keep everything running after the summary until Ctrl-C, and serve the
                    web UI (its address is printed and written to --endpoints as "ui")
  --endpoints FILE  write the addresses to reach the running demo as JSON
                    ({ "nats": ..., "kubernetes": ..., "kubernetesMode": "simulated"|"real",
                    "kubeconfig": ... }; with --hold, kubectl --kubeconfig <kubeconfig> get nodes
                    works while it runs (with --kubernetes real also get
                    pods,statefulsets,volumeattachments,leases -A and get events -A); power
                    scenarios add "bmc": { "<node>": { host, port, user, passwordFile } } for
                    ipmitool -I lanplus -C 3)`;

const ms = (v: number | null) => (v === null ? "-" : `${(v / 1000).toFixed(1)}s`);

function printSummary(s: DemoSummary) {
  console.log(
    `\nscenario ${s.scenario}: ${s.nodes} nodes, ${s.eventsProcessed} events processed, ${s.reboots} reboots, ${(s.elapsedMs / 1000).toFixed(1)}s\n`,
  );
  console.log(
    table(
      s.faults.map((f) => [
        f.node,
        f.kind,
        ms(f.detectedAfterMs),
        ms(f.fencedAfterMs),
        f.fencedBy ?? "-",
        ms(f.workloadsRecoveredAfterMs),
        ms(f.rejoinedAfterMs),
        f.selfFenced ? "yes" : "no",
        f.reprovisioned ? "yes" : "no",
        f.finalState,
        f.statefulReplicas.join(",") || "-",
      ]),
      [
        "NODE",
        "FAULT",
        "DETECTED",
        "FENCED",
        "FENCED BY",
        "WORKLOADS BACK",
        "REJOINED",
        "SELF-FENCED",
        "REPROVISIONED",
        "FINAL",
        "STATEFUL",
      ],
    ),
  );
  console.log(
    s.invariantViolations.length === 0
      ? "\ninvariants: no stateful workload ever ran on two nodes at once"
      : `\nINVARIANT VIOLATIONS:\n${s.invariantViolations.map((v) => `  ${v.invariant}: ${v.detail}`).join("\n")}`,
  );
  console.log(s.ok ? "result: OK" : "result: FAILED");
}

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      scenario: { type: "string" },
      nodes: { type: "string" },
      json: { type: "boolean" },
      hold: { type: "boolean" },
      endpoints: { type: "string" },
      policy: { type: "string" },
      server: { type: "string" },
      kubernetes: { type: "string" },
    },
    USAGE,
  );
  if (values.help) return (console.log(USAGE), 0);
  const nodes = values.nodes ? Number(values.nodes) : 12;
  if (!Number.isInteger(nodes) || nodes < 3 || nodes > 500) {
    console.error("fenceline demo: --nodes must be an integer between 3 and 500");
    return 2;
  }
  const scenario = SCENARIOS[(values.scenario as string | undefined) ?? "default"];
  if (scenario) {
    try {
      checkScenario(scenario, nodes);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  const kubernetes = (values.kubernetes as string | undefined) ?? "simulated";
  if (kubernetes !== "simulated" && kubernetes !== "real")
    throw new UsageError(`--kubernetes must be "simulated" or "real", got "${kubernetes}"\n\n${USAGE}`);
  const json = Boolean(values.json);
  const progress = (line: string) => process.stderr.write(`${line}\n`);
  const given = values.policy ? loadPolicy(values.policy as string, DEMO_POLICY) : undefined;
  const demo = await runDemo({
    nodes,
    scenario: (values.scenario as string | undefined) ?? "default",
    ...(given ? { policy: given } : {}),
    ...(values.server ? { server: values.server as string } : {}),
    kubernetes,
    progress,
  });
  const { summary } = demo;
  if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else printSummary(summary);

  // With --hold, the web page (statechart, nodes, timelines, replay) is served too.
  const ui = values.hold ? await startUiAt(demo.natsUrl, { policy: demo.policy }) : undefined;
  if (values.endpoints) {
    const bmc = Object.fromEntries(demo.bmcs.map(({ name, host, port, user, passwordFile }) => [name, { host, port, user, passwordFile }]));
    const endpoints = {
      nats: demo.natsUrl,
      kubernetes: demo.kubernetesUrl,
      kubernetesMode: demo.kubernetesMode,
      kubeconfig: demo.kubeconfig,
      ...(ui ? { ui: ui.url } : {}),
      ...(demo.bmcs.length > 0 ? { bmc } : {}),
    };
    writeFileSync(values.endpoints as string, `${JSON.stringify(endpoints, null, 2)}\n`);
    if (!json) console.log(`endpoints written to ${values.endpoints}`);
  }
  if (values.hold) {
    progress(`holding: NATS at ${demo.natsUrl}; try NATS_URL=${demo.natsUrl} npm run -s fenceline -- nodes   (Ctrl-C to stop)`);
    progress(
      demo.kubernetesMode === "real"
        ? `holding: Kubernetes API (real) at ${demo.kubernetesUrl}; try kubectl --kubeconfig ${demo.kubeconfig} get nodes,pods,statefulsets,volumeattachments,leases -A, get events -A, describe node NODE`
        : `holding: Kubernetes API (simulated) at ${demo.kubernetesUrl}; try kubectl --kubeconfig ${demo.kubeconfig} get nodes`,
    );
    if (ui) progress(`holding: web UI at ${ui.url}`);
    const [first] = demo.bmcs;
    if (first)
      progress(
        `holding: each machine's BMC answers IPMI over LAN; try ipmitool -I lanplus -C 3 -H ${first.host} -p ${first.port} -U ${first.user} -f ${first.passwordFile} chassis power status`,
      );
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
  }
  await ui?.close();
  await demo.stop();
  return summary.ok ? 0 : 1;
}
