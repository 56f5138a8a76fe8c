import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { DEMO_POLICY } from "@fenceline/contracts";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, createLogger, startNatsServer, type NatsServer } from "@fenceline/bus";
import { Buckets } from "@fenceline/streams";
import { startSimFleetOnNats, type SimFleetOnNats } from "@fenceline/cli";
import {
  createNamespace,
  createStatefulSet,
  deleteNamespace,
  FLEET_LABEL,
  isRunningAndReady,
  KubeletFleet,
  listPods,
} from "@fenceline/kube-lab";
import { checkInvariants, type Violation } from "@fenceline/sim";
import { CLI, ROOT, runCli } from "../e2e/cli.js";
import { kubeAdmin, sleep } from "./harness.js";

/**
 * `fenceline up --kubeconfig` as a user runs it, on the real control plane with the engine
 * ServiceAccount's token: the node watch registers the selected nodes (not the control-plane
 * node), a node labelled for exclusion is paused, and a crashed node is fenced and its
 * StatefulSet pod moved (the condition detector on the controller's Ready=Unknown is
 * remediation.test.ts's). Runs the built CLI, like test/e2e.
 */
describe("fenceline up --kubeconfig on the real control plane", () => {
  const dir = mkdtempSync(join(tmpdir(), "fl-up-k8s-"));
  const fleetName = "up";
  const workers = ["up-w1", "up-w2", "up-w3", "up-w4", "up-w5"];
  const admin = kubeAdmin();
  let nats: NatsServer;
  let nc: NatsConnection;
  let sim: SimFleetOnNats;
  let machines: KubeletFleet;
  const violations: Violation[] = [];
  let up: ChildProcess;
  let stderr = "";

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
  const waitFor = async (what: string, pred: () => Promise<boolean> | boolean, timeoutMs = 30_000) => {
    const until = Date.now() + timeoutMs;
    while (!(await pred())) {
      if (Date.now() > until)
        throw new Error(`timed out waiting for ${what}: ${JSON.stringify([...(await states())])}\n${stderr.slice(-4000)}`);
      await sleep(200);
    }
  };

  beforeAll(async () => {
    await createNamespace(admin, fleetName);
    machines = new KubeletFleet({ admin, nodes: [...workers, "up-cp1"], fleet: fleetName });
    await machines.start();
    // The kubelet may not give itself a node-role label (NodeRestriction): an administrator does.
    await admin.patch("/api/v1/nodes/up-cp1", {
      metadata: { labels: { "node-role.kubernetes.io/control-plane": "" } },
      spec: { taints: [{ key: "node-role.kubernetes.io/control-plane", effect: "NoSchedule" }] },
    });
    await createStatefulSet(admin, { namespace: fleetName, name: "db", replicas: 2, fleet: fleetName });
    await waitFor(
      "db running",
      async () => {
        const pods = await listPods(admin, fleetName);
        return pods.length === 2 && pods.every(isRunningAndReady);
      },
      90_000,
    );
    nats = await startNatsServer({ log: createLogger("up-test", { level: "silent" }) });
    nc = await connectNats(nats.url, { name: "up-test" });
    const policy = join(dir, "policy.json");
    writeFileSync(
      policy,
      JSON.stringify({ ...DEMO_POLICY, unhealthyDurationMs: 1_000, remediation: [{ strategy: "Automatic", timeoutMs: 20_000 }] }),
    );
    up = spawn(
      process.execPath,
      [
        CLI,
        "up",
        "--server",
        nats.url,
        "--policy",
        policy,
        "--kubeconfig",
        inject("kubeTest").engineKubeconfig,
        "--node-selector",
        `${FLEET_LABEL}=${fleetName},!node-role.kubernetes.io/control-plane`,
        "--condition-duration",
        "0s",
      ],
      { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, FENCELINE_LOG_LEVEL: "info" } },
    );
    up.stderr!.on("data", (d) => (stderr += d));
    sim = await startSimFleetOnNats({
      url: nats.url,
      connectionName: "up-test-agents",
      nodes: workers,
      cluster: machines,
      policy: DEMO_POLICY,
      rebootMs: 500,
      log: createLogger("up-test-fleet", { level: "silent" }),
      onStep: (now) => violations.push(...checkInvariants(machines, now).violations),
    });
  }, 150_000);

  afterAll(async () => {
    await sim?.stop();
    up?.kill("SIGINT");
    await new Promise((r) => (up && up.exitCode === null ? up.on("close", r) : r(undefined)));
    await nc?.drain().catch(() => {});
    await nats?.stop();
    await machines?.stop({ deleteNodes: true });
    await deleteNamespace(admin, fleetName, fleetName);
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it("registers every selected node (not the control plane) as healthy", async () => {
    await waitFor("five healthy workers", async () => {
      const s = await states();
      return workers.every((w) => s.get(w) === "healthy");
    });
    expect((await states()).has("up-cp1")).toBe(false);
    const listed = await runCli(["nodes", "--json", "--server", nats.url]);
    expect((JSON.parse(listed.stdout) as Array<{ node: string }>).map((n) => n.node)).toEqual(workers);
  }, 60_000);

  it("pauses a node labelled fenceline.io/exclude-from-remediation=true", async () => {
    // A worker that runs no replica.
    const db = (await listPods(admin, fleetName)).map((p) => p.spec.nodeName as string);
    const excluded = workers.filter((w) => !db.includes(w)).at(-1)!;
    await admin.patch(`/api/v1/nodes/${excluded}`, { metadata: { labels: { "fenceline.io/exclude-from-remediation": "true" } } });
    await waitFor(`${excluded} paused`, async () => (await states()).get(excluded) === "paused");
  }, 60_000);

  it("a crashed node is fenced and its StatefulSet pod moves through the API", async () => {
    const victim = (await admin.get(`/api/v1/namespaces/${fleetName}/pods/db-0`)).spec.nodeName as string;
    await sim.fleet.crash(victim);
    await waitFor(
      "db-0 running and ready on another node",
      async () => {
        const pod = await admin.find(`/api/v1/namespaces/${fleetName}/pods/db-0`);
        return (
          pod !== null &&
          pod.spec.nodeName !== victim &&
          isRunningAndReady(pod) &&
          machines.replicas().find((r) => r.replica === `${fleetName}/db-0`)?.runningOn.length === 1
        );
      },
      60_000,
    );
    const audit = await runCli(["audit", "--node", victim, "--server", nats.url]);
    expect(audit.stdout).toMatch(/Automatic: Kubernetes 1\.37 → OutOfServiceTaint/);
    expect(violations).toEqual([]);
  }, 90_000);

  it("refuses Kubernetes flags without a cluster, as a usage error", async () => {
    const r = await runCli(["up", "--condition-duration", "5s"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--condition-duration needs --kubeconfig FILE or --in-cluster");
    const bad = await runCli(["up", "--kubeconfig", join(dir, "missing.yaml"), "--server", nats.url]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/fenceline up: cannot load the kubeconfig .*missing\.yaml/);
  });
});
