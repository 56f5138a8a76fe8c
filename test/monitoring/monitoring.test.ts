import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startNatsServer, type NatsServer } from "@fenceline/bus";
import { loadAllYaml } from "@fenceline/kubernetes";
import { ensureBinary } from "@fenceline/toolchain";
import { ROOT, startUp, type RunningUp } from "../e2e/cli.js";
import { freePort } from "../support/free-port.js";
import { parseExposition } from "../support/metrics-text.js";

const run = promisify(execFile);
const MONITORING = join(ROOT, "deploy", "monitoring");
const RULES = join(MONITORING, "fenceline-rules.yaml");
const DASHBOARD = join(MONITORING, "grafana-dashboard.json");

type Rule = { alert: string; expr: string; for?: string; labels: Record<string, string>; annotations: Record<string, string> };
type RuleFile = { groups: Array<{ name: string; rules: Rule[] }> };
type Panel = { title: string; targets?: Array<{ expr: string }>; panels?: Panel[] };
type Dashboard = { panels: Panel[]; templating: { list: Array<{ query?: unknown; definition?: string }> } };

const rules = (loadAllYaml(readFileSync(RULES, "utf8")) as RuleFile[])[0]!;
const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as Dashboard;

/** The metric names a PromQL expression reads (Fenceline's and the process metrics). */
function metricsOf(expr: string): string[] {
  return [...expr.matchAll(/\b((?:fenceline|process|nodejs)_[a-zA-Z0-9_]*)/g)].map((m) => m[1]!);
}

describe("alert rules (deploy/monitoring)", () => {
  it("promtool checks the rules and runs their unit tests: every alert fires when it should and stays silent otherwise", async () => {
    const promtool = await ensureBinary("promtool");
    const check = await run(promtool, ["check", "rules", RULES]);
    expect(check.stdout).toContain(`SUCCESS: ${rules.groups.flatMap((g) => g.rules).length} rules found`);
    const test = await run(promtool, ["test", "rules", "fenceline-rules.test.yaml"], { cwd: MONITORING }).catch(
      (err: { stdout: string; stderr: string }) => {
        throw new Error(`promtool test rules failed:\n${err.stdout}\n${err.stderr}`);
      },
    );
    expect(test.stdout).toContain("SUCCESS");
  }, 600_000);

  it("every alert has a unit test, a severity and a summary", () => {
    const tests = readFileSync(join(MONITORING, "fenceline-rules.test.yaml"), "utf8");
    const alerts = rules.groups.flatMap((g) => g.rules);
    expect(alerts.map((r) => r.alert).sort()).toEqual(
      [
        "FencelineAgentContractWeak",
        "FencelineDeadLettersGrowing",
        "FencelineEnginePartitionUnowned",
        "FencelineNatsUnreachable",
        "FencelineNoHealthyMajority",
        "FencelineNodeNeedsOperator",
        "FencelineNodeStuckFencing",
        "FencelineRemediationSlotsExhausted",
      ].sort(),
    );
    for (const r of alerts) {
      // A firing case: the alert's name under exp_alerts with expected labels.
      expect(tests, r.alert).toMatch(new RegExp(`alertname: ${r.alert}\\n\\s+exp_alerts:\\n\\s+- exp_labels`));
      expect(["critical", "warning"]).toContain(r.labels.severity);
      expect(r.annotations.summary, r.alert).toBeTruthy();
    }
  });

  it("the PrometheusRule carries exactly the rules file's groups", () => {
    const [manifest] = loadAllYaml(readFileSync(join(MONITORING, "prometheusrule.yaml"), "utf8")) as Array<{
      kind: string;
      spec: RuleFile;
    }>;
    expect(manifest!.kind).toBe("PrometheusRule");
    expect(manifest!.spec.groups).toEqual(rules.groups);
  });

  it("kubectl kustomize deploy/monitoring renders the rules, the pod monitor and the dashboard ConfigMap", async () => {
    const { stdout } = await run("kubectl", ["kustomize", MONITORING]);
    const docs = loadAllYaml(stdout) as Array<{
      kind: string;
      metadata: { name: string; labels?: Record<string, string> };
      data?: Record<string, string>;
    }>;
    expect(docs.map((d) => d.kind).sort()).toEqual(["ConfigMap", "PodMonitor", "PrometheusRule"]);
    const cm = docs.find((d) => d.kind === "ConfigMap")!;
    expect(cm.metadata.labels?.grafana_dashboard).toBe("1");
    expect(JSON.parse(cm.data!["fenceline-dashboard.json"]!)).toEqual(dashboard);
    // The pod monitor scrapes a port the engine declares.
    const engine = readFileSync(join(ROOT, "deploy", "engine.yaml"), "utf8");
    expect(engine).toMatch(/name: metrics, containerPort: 9464/);
  });
});

describe("alerts and dashboard use only metrics the control plane exports", () => {
  let server: NatsServer;
  let up: RunningUp | undefined;
  let exported: Set<string>;

  beforeAll(async () => {
    server = await startNatsServer();
    const port = await freePort();
    up = await startUp(["--server", server.url, "--metrics-port", String(port), "--metrics-host", "127.0.0.1"]);
    // The live registry: every family `fenceline up` serves, with its type.
    const { families } = parseExposition(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
    exported = new Set();
    for (const [name, f] of families) {
      exported.add(name);
      if (f.type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) exported.add(`${name}${s}`);
    }
  }, 40_000);

  afterAll(async () => {
    await up?.stop();
    await server?.stop();
  });

  const dashboardExprs = () => {
    const out: Array<{ where: string; expr: string }> = [];
    const walk = (panels: Panel[]) => {
      for (const p of panels) {
        for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: t.expr });
        walk(p.panels ?? []);
      }
    };
    walk(dashboard.panels);
    for (const v of dashboard.templating.list) if (v.definition) out.push({ where: "a template variable", expr: v.definition });
    return out;
  };

  it("the served registry is the one the docs list", () => {
    expect(exported.has("fenceline_nodes")).toBe(true);
    expect(exported.has("fenceline_time_to_fence_seconds_bucket")).toBe(true);
    expect(exported.has("process_cpu_seconds_total")).toBe(true);
    // Each node's fencing guarantee and whether its agent's contract falls short of the policy.
    expect(exported.has("fenceline_nodes_by_guarantee")).toBe(true);
    expect(exported.has("fenceline_agent_contract_weak")).toBe(true);
    const documented = new Set(
      [...readFileSync(join(ROOT, "docs", "visualizer.md"), "utf8").matchAll(/^\| `(fenceline_[a-z_]+)` \|/gm)].map((m) => m[1]!),
    );
    const served = [...exported].filter((n) => n.startsWith("fenceline_") && !/_(bucket|sum|count)$/.test(n));
    expect(
      served.filter((n) => !documented.has(n)),
      "served but not in docs/visualizer.md",
    ).toEqual([]);
    expect(
      [...documented].filter((n) => !exported.has(n)),
      "documented but not served",
    ).toEqual([]);
  });

  it("every metric the alert rules read is exported", () => {
    const missing = rules.groups
      .flatMap((g) => g.rules)
      .flatMap((r) => metricsOf(r.expr).map((m) => ({ where: r.alert, m })))
      .filter(({ m }) => !exported.has(m));
    expect(missing).toEqual([]);
  });

  it("every metric the Grafana dashboard queries is exported", () => {
    const exprs = dashboardExprs();
    expect(exprs.length).toBeGreaterThan(20);
    const missing = exprs.flatMap(({ where, expr }) => metricsOf(expr).map((m) => ({ where, m }))).filter(({ m }) => !exported.has(m));
    expect(missing).toEqual([]);
    // The panels the dashboard promises.
    const titles = dashboard.panels.map((p) => p.title);
    for (const t of [
      "Nodes per state",
      "Transitions",
      "Time to fence",
      "Time to remediate",
      "Time to rejoin",
      "Dead letters (FL_DLQ)",
      "Engine lag",
    ])
      expect(titles).toContain(t);
  });
});
