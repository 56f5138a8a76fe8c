import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_POLICY, FENCING_TAINT, systemClock } from "@fenceline/contracts";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, createLogger, startNatsServer, type NatsServer } from "@fenceline/bus";
import { Buckets } from "@fenceline/streams";
import { startSimFleetOnNats, type SimFleetOnNats } from "@fenceline/cli";
import { InMemoryCluster, checkInvariants, startKubernetesApiServer, type KubernetesApiServer, type Violation } from "@fenceline/sim";
import { CLI, ROOT, runCli } from "../e2e/cli.js";
import { sleep } from "./harness.js";

/**
 * `fenceline up --kubeconfig` as a user runs it, against the simulated API server and a
 * simulated fleet whose agents heartbeat over the same NATS: the node watch registers the
 * selected nodes, a node labelled for exclusion is paused, and a crashed node is reported by
 * both detectors, fenced, and its StatefulSet pod moved through the real adapter. Runs the
 * built CLI, like test/e2e (`pnpm exec turbo run build` first).
 */
describe("fenceline up --kubeconfig", () => {
  const dir = mkdtempSync(join(tmpdir(), "fl-up-k8s-"));
  const workers = ["w-1", "w-2", "w-3", "w-4", "w-5"];
  let nats: NatsServer;
  let nc: NatsConnection;
  let sim: SimFleetOnNats;
  const violations: Violation[] = [];
  let api: KubernetesApiServer;
  let cluster: InMemoryCluster;
  let up: ChildProcess;
  let stderr = "";

  /** Each node's state, from the engine's snapshots (what `fenceline nodes` reads). */
  const states = async () => {
    const out = new Map<string, string>();
    try {
      const kv = await new Kvm(nc).open(Buckets.nodes);
      for await (const key of await kv.keys()) {
        const entry = await kv.get(key);
        if (entry?.operation === "PUT") {
          const snap = entry.json<{ node: string; path: string }>();
          out.set(snap.node, snap.path.split(".")[0]!);
        }
      }
    } catch {
      // Not provisioned yet.
    }
    return out;
  };
  const waitFor = async (what: string, pred: () => Promise<boolean> | boolean, timeoutMs = 15_000) => {
    const until = Date.now() + timeoutMs;
    while (!(await pred())) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}: ${JSON.stringify([...(await states())])}\n${stderr.slice(-4000)}`);
      await sleep(100);
    }
  };

  beforeAll(async () => {
    nats = await startNatsServer({ log: createLogger("up-test", { level: "silent" }) });
    nc = await connectNats(nats.url, { name: "up-test" });
    cluster = new InMemoryCluster({ clock: systemClock, nodes: [...workers, "cp-1"] });
    // Workloads stay off the control-plane node, as its taint says.
    await cluster.addTaint("cp-1", { key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" });
    cluster.addStatefulSet("db", 2);
    api = await startKubernetesApiServer({ cluster, controlPlaneNodes: ["cp-1"], nodeMonitorGracePeriodMs: 500 });
    const kubeconfig = api.writeKubeconfig(dir);
    const policy = join(dir, "policy.json");
    writeFileSync(policy, JSON.stringify({ ...DEMO_POLICY, unhealthyDurationMs: 1_000, remediation: [{ strategy: "Automatic", timeoutMs: 10_000 }] }));
    up = spawn(
      process.execPath,
      [CLI, "up", "--server", nats.url, "--policy", policy, "--kubeconfig", kubeconfig, "--node-selector", "!node-role.kubernetes.io/control-plane", "--condition-duration", "0s"],
      { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, FENCELINE_LOG_LEVEL: "info" } },
    );
    up.stderr!.on("data", (d) => (stderr += d));
    sim = await startSimFleetOnNats({
      url: nats.url,
      connectionName: "up-test-agents",
      nodes: workers,
      cluster,
      policy: DEMO_POLICY,
      rebootMs: 500,
      log: createLogger("up-test-fleet", { level: "silent" }),
      onStep: (now) => violations.push(...checkInvariants(cluster, now).violations),
    });
  }, 30_000);

  afterAll(async () => {
    await sim?.stop();
    up?.kill("SIGINT");
    await new Promise((r) => up?.on("close", r));
    await api?.stop();
    await nc?.drain().catch(() => {});
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("registers every selected node (not the control plane) as healthy", async () => {
    await waitFor("five healthy workers", async () => {
      const s = await states();
      return workers.every((w) => s.get(w) === "healthy");
    });
    expect((await states()).has("cp-1")).toBe(false);
    const listed = await runCli(["nodes", "--json", "--server", nats.url]);
    expect((JSON.parse(listed.stdout) as Array<{ node: string }>).map((n) => n.node)).toEqual(workers);
  });

  it("pauses a node labelled fenceline.io/exclude-from-remediation=true", async () => {
    api.setNodeLabels("w-5", { "fenceline.io/exclude-from-remediation": "true" });
    await waitFor("w-5 paused", async () => (await states()).get("w-5") === "paused");
  }, 60_000);

  it("a crashed node is reported by both detectors, fenced, and its StatefulSet pod moves through the API", async () => {
    const victim = cluster.pods().find((p) => p.name === "db-0")!.node;
    expect(victim).not.toBe("w-5");
    await sim.fleet.crash(victim);
    await waitFor("db-0 running on another node", () => cluster.replicas().find((r) => r.replica === "db-0")!.runningOn.some((n) => n !== victim), 30_000);
    await waitFor(`${victim} remediated`, async () => (await states()).get(victim) === "remediating");
    const audit = await runCli(["audit", "--node", victim, "--server", nats.url]);
    expect(audit.stdout).toMatch(/signal\.unhealthy/);
    expect(audit.stdout).toMatch(/Automatic: Kubernetes 1\.30 → OutOfServiceTaint/);
    expect(api.requests.some((r) => r.method === "PATCH" && r.path === `/api/v1/nodes/${victim}` && r.status === 200)).toBe(true);
    expect(cluster.events().some((e) => e.node === victim && e.kind === "pod.force-deleted" && e.what.includes("PodGC"))).toBe(true);
    expect(violations).toEqual([]);
  }, 60_000);

  it("refuses Kubernetes flags without a cluster, as a usage error", async () => {
    const r = await runCli(["up", "--condition-duration", "5s"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--condition-duration needs --kubeconfig FILE or --in-cluster");
    const bad = await runCli(["up", "--kubeconfig", join(dir, "missing.yaml"), "--server", nats.url]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/fenceline up: cannot load the kubeconfig .*missing\.yaml/);
  });
});
