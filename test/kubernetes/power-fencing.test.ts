import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AuditRecord, DEMO_POLICY, type PolicyInput } from "@fenceline/contracts";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, createLogger, startNatsServer, type NatsServer } from "@fenceline/bus";
import { Buckets, Streams, Subjects } from "@fenceline/streams";
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
import { checkInvariants, startIpmiSimBmc, type IpmiSimBmc, type Violation } from "@fenceline/sim";
import { CLI, ROOT } from "../e2e/cli.js";
import { ipmiDevices } from "../fencing/harness.js";
import { readStream } from "../support/read-stream.js";
import { kubeAdmin, sleep } from "./harness.js";

/**
 * Power fencing on the real control plane: `fenceline up --kubeconfig` (the engine
 * ServiceAccount's token) `--fence-devices`, the simulated kubelets of kube-lab, and an ipmi_sim
 * BMC per machine reached by the real fence_ipmilan. The levels are [ipmi], then [watchdog].
 */
const POLICY: PolicyInput = {
  ...DEMO_POLICY,
  version: "power-k8s",
  unhealthyDurationMs: 1_000,
  agent: { ...DEMO_POLICY.agent, watchdogTimeoutMs: 10_000 },
  fencing: { levels: [{ methods: ["ipmi"], timeoutMs: "15s" }, ["watchdog"]], timeoutMs: "2m" },
  remediation: [{ strategy: "Automatic", timeoutMs: 20_000 }],
};

describe("power fencing on the real control plane", () => {
  const dir = mkdtempSync(join(tmpdir(), "fl-power-k8s-"));
  const fleetName = "power";
  const workers = ["power-w1", "power-w2", "power-w3", "power-w4", "power-w5"];
  const admin = kubeAdmin();
  let nats: NatsServer;
  let nc: NatsConnection;
  let sim: SimFleetOnNats | undefined;
  let machines: KubeletFleet;
  const bmcs = new Map<string, IpmiSimBmc>();
  const violations: Violation[] = [];
  let up: ChildProcess;
  let stderr = "";

  const states = async () => {
    const out = new Map<string, string>();
    try {
      const kv = await new Kvm(nc).open(Buckets.nodes);
      for await (const key of await kv.keys()) {
        const entry = await kv.get(key);
        if (entry?.operation === "PUT") out.set(key, entry.json<{ path: string }>().path.split(".")[0]!);
      }
    } catch {
      // Not provisioned yet.
    }
    return out;
  };
  const waitFor = async (what: string, pred: () => Promise<boolean> | boolean, timeoutMs = 60_000) => {
    const until = Date.now() + timeoutMs;
    while (!(await pred())) {
      if (Date.now() > until)
        throw new Error(`timed out waiting for ${what}: ${JSON.stringify([...(await states())])}\n${stderr.slice(-4000)}`);
      await sleep(200);
    }
  };
  const audit = async (node: string) =>
    (await readStream(nc, Streams.audit, Subjects.audit(node))).map((m) => AuditRecord.parse(m.data)).sort((a, b) => a.seq - b.seq);
  const podNode = async (name: string) =>
    (await admin.find(`/api/v1/namespaces/${fleetName}/pods/${name}`))?.spec.nodeName as string | undefined;
  const runningElsewhere = (name: string, node: string) => async () => {
    const pod = await admin.find(`/api/v1/namespaces/${fleetName}/pods/${name}`);
    return (
      pod !== null &&
      pod.spec.nodeName !== node &&
      isRunningAndReady(pod) &&
      machines.replicas().find((r) => r.replica === `${fleetName}/${name}`)?.runningOn.length === 1
    );
  };
  const allHealthy = async () => {
    const s = await states();
    return workers.every((w) => s.get(w) === "healthy") && machines.replicas().every((r) => r.runningOn.length === 1);
  };
  const MOVES = ["pods.delete", "workloads.await-gone"];
  const firstMoveAfterConfirmation = (records: AuditRecord[]) => {
    const confirmed = records.find((r) => r.reason?.includes("fencing confirmed"))!;
    const move = records.find((r) =>
      r.commands.some(
        (c) => MOVES.includes(c.kind) || (c.kind === "taint.add" && c.params.taint.key === "node.kubernetes.io/out-of-service"),
      ),
    );
    expect(confirmed).toBeDefined();
    expect(move!.seq).toBeGreaterThanOrEqual(confirmed.seq);
    return confirmed;
  };

  beforeAll(async () => {
    await createNamespace(admin, fleetName);
    machines = new KubeletFleet({ admin, nodes: workers, fleet: fleetName });
    await machines.start();
    await createStatefulSet(admin, { namespace: fleetName, name: "db", replicas: 2, fleet: fleetName });
    await waitFor(
      "db running",
      async () => {
        const pods = await listPods(admin, fleetName);
        return pods.length === 2 && pods.every(isRunningAndReady);
      },
      90_000,
    );
    for (const node of workers) {
      bmcs.set(
        node,
        await startIpmiSimBmc({
          name: node,
          dir: join(dir, `bmc-${node}`),
          machine: {
            power: () => sim?.fleet.powerState(node) ?? "on",
            setPower: async (on) => {
              if (!sim) return;
              if (on) await sim.fleet.powerOn(node);
              else await sim.fleet.powerOff(node);
            },
          },
        }),
      );
    }
    const devices = join(dir, "devices.json");
    writeFileSync(devices, JSON.stringify(ipmiDevices(bmcs)));
    const policy = join(dir, "policy.json");
    writeFileSync(policy, JSON.stringify(POLICY));
    nats = await startNatsServer({ log: createLogger("power-k8s", { level: "silent" }) });
    nc = await connectNats(nats.url, { name: "power-k8s" });
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
        `${FLEET_LABEL}=${fleetName}`,
        "--condition-duration",
        "0s",
        "--metrics-port",
        "0",
        "--fence-devices",
        devices,
      ],
      { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, FENCELINE_LOG_LEVEL: "info" } },
    );
    up.stderr!.on("data", (d) => (stderr += d));
    sim = await startSimFleetOnNats({
      url: nats.url,
      connectionName: "power-k8s-agents",
      nodes: workers,
      cluster: machines,
      policy: DEMO_POLICY,
      rebootMs: 500,
      bootGate: true,
      log: createLogger("power-k8s-fleet", { level: "silent" }),
      onStep: (now) => violations.push(...checkInvariants(machines, now).violations),
    });
    await waitFor("five healthy workers", allHealthy, 60_000);
  }, 180_000);

  afterAll(async () => {
    await sim?.stop();
    up?.kill("SIGINT");
    await new Promise((r) => (up && up.exitCode === null ? up.on("close", r) : r(undefined)));
    await Promise.all([...bmcs.values()].map((b) => b.stop()));
    await nc?.drain().catch(() => {});
    await nats?.stop();
    await machines?.stop({ deleteNodes: true });
    await deleteNamespace(admin, fleetName, fleetName);
    rmSync(dir, { recursive: true, force: true });
  }, 90_000);

  it("a hung node whose watchdog is broken is powered off, its StatefulSet pod moves once through the API, then it is powered on and rejoins", async () => {
    const victim = (await podNode("db-0"))!;
    const bmc = bmcs.get(victim)!;
    const at = Date.now();
    await sim!.fleet.hang(victim, { watchdog: "broken" });
    await waitFor("db-0 running and ready on another node", runningElsewhere("db-0", victim));
    console.log(`real control plane: hung node ${victim}: db-0 running and ready elsewhere ${Date.now() - at} ms after the hang`);
    const records = (await audit(victim)).filter((r) => r.at >= at - 100);
    const confirmed = firstMoveAfterConfirmation(records);
    expect(confirmed.reason).toContain("fencing confirmed: fence agent: powered off (level 1/2 [ipmi])");
    expect(bmc.powerChanges[0]?.to).toBe("off");
    expect(records.find((r) => r.reason?.includes("Automatic: Kubernetes 1.37 → OutOfServiceTaint"))).toBeDefined();
    await waitFor(`${victim} healthy again`, async () => (await states()).get(victim) === "healthy");
    expect(bmc.powerChanges.map((c) => c.to)).toEqual(["off", "on"]);
    expect(machines.replicas().find((r) => r.replica === `${fleetName}/db-0`)?.runningOn).toHaveLength(1);
    expect(violations).toEqual([]);
    await waitFor("every node healthy, every replica running once", allHealthy);
  }, 180_000);

  it("a BMC that does not answer escalates to the watchdog level; the pod moves once, after the safe time", async () => {
    const victim = (await podNode("db-0"))!;
    const bmc = bmcs.get(victim)!;
    const changes = bmc.powerChanges.length;
    await bmc.faults.unreachable(true);
    const at = Date.now();
    try {
      await sim!.fleet.crash(victim, 25_000);
      await waitFor("db-0 running and ready on another node", runningElsewhere("db-0", victim));
      const records = (await audit(victim)).filter((r) => r.at >= at - 100);
      const confirmed = firstMoveAfterConfirmation(records);
      expect(records.find((r) => r.reason?.includes("escalating to level 2/2 [watchdog]"))?.reason).toContain(
        "fence.poweroff (ipmi) failed: unreachable",
      );
      expect(confirmed.reason).toContain("(level 2/2 [watchdog])");
      expect(bmc.powerChanges.length).toBe(changes);
      expect(violations).toEqual([]);
    } finally {
      await bmc.faults.unreachable(false);
    }
    await waitFor("every node healthy, every replica running once", allHealthy, 90_000);
  }, 180_000);
});
