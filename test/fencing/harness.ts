import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, createLogger, startNatsServer, type NatsServer } from "@fenceline/bus";
import { startSimFleetOnNats, type SimFleetOnNats } from "@fenceline/cli";
import { AuditRecord, NodeEvent, systemClock, type PolicyInput } from "@fenceline/contracts";
import {
  InMemoryCluster,
  checkInvariants,
  startIpmiSimBmc,
  startKubernetesApiServer,
  type IpmiSimBmc,
  type KubernetesApiServer,
  type Violation,
} from "@fenceline/sim";
import { Buckets, Streams, Subjects } from "@fenceline/streams";
import { CLI, ROOT } from "../e2e/cli.js";
import { readStream } from "../support/read-stream.js";

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export type PowerLab = {
  nats: NatsServer;
  nc: NatsConnection;
  cluster: InMemoryCluster;
  api: KubernetesApiServer;
  sim: SimFleetOnNats;
  /** Each node's BMC (ipmi_sim), powering the simulated machine off and on. */
  bmcs: Map<string, IpmiSimBmc>;
  nodes: string[];
  dir: string;
  violations: Violation[];
  /** What `fenceline up` wrote to stderr (its JSON log lines). */
  log(): string;
  /** Each node's top-level state, from the engine's snapshots. */
  states(): Promise<Map<string, string>>;
  audit(node: string): Promise<AuditRecord[]>;
  events(node: string): Promise<NodeEvent[]>;
  waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
};

export type PowerLabOptions = {
  nodes?: string[];
  policy: PolicyInput;
  /** The fence devices file, given each node's BMC and the lab directory. */
  devices: (bmcs: Map<string, IpmiSimBmc>, dir: string) => unknown;
  statefulSets?: Record<string, number>;
  rebootMs?: number;
};

/**
 * A real nats-server; `fenceline up --kubeconfig --fence-devices` as a user runs it (the built
 * CLI), against the simulated Kubernetes API server; a simulated fleet whose machines run the real
 * agent over NATS; and for each machine an ipmi_sim BMC on a loopback UDP port whose chassis power
 * control powers that machine off and on. Invariants are checked on every step of the cluster.
 */
export async function startPowerLab(options: PowerLabOptions): Promise<PowerLab> {
  const nodes = options.nodes ?? ["w-1", "w-2", "w-3", "w-4", "w-5"];
  const dir = await mkdtemp(join(tmpdir(), "fl-power-lab-"));
  const quiet = createLogger("power-lab", { level: "silent" });
  const nats = await startNatsServer({ log: quiet });
  const nc = await connectNats(nats.url, { name: "power-lab" });
  const cluster = new InMemoryCluster({ clock: systemClock, nodes });
  for (const [name, replicas] of Object.entries(options.statefulSets ?? { db: 1 })) cluster.addStatefulSet(name, replicas);
  const api = await startKubernetesApiServer({ cluster, nodeMonitorGracePeriodMs: 500 });
  const kubeconfig = api.writeKubeconfig(dir);

  const bmcs = new Map<string, IpmiSimBmc>();
  let sim: SimFleetOnNats | undefined;
  for (const node of nodes) {
    bmcs.set(
      node,
      await startIpmiSimBmc({
        name: node,
        dir: join(dir, `bmc-${node}`),
        machine: {
          // Until the fleet runs, every machine is on.
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
  const devicesFile = join(dir, "devices.json");
  await writeFile(devicesFile, JSON.stringify(options.devices(bmcs, dir), null, 2));
  const policyFile = join(dir, "policy.json");
  await writeFile(policyFile, JSON.stringify(options.policy));

  let stderr = "";
  const up: ChildProcess = spawn(
    process.execPath,
    [
      CLI,
      "up",
      "--server",
      nats.url,
      "--policy",
      policyFile,
      "--kubeconfig",
      kubeconfig,
      "--condition-duration",
      "0s",
      "--metrics-port",
      "0",
      "--fence-devices",
      devicesFile,
    ],
    { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, FENCELINE_LOG_LEVEL: "info" } },
  );
  up.stderr!.on("data", (d) => (stderr += d));

  const violations: Violation[] = [];
  const { Policy } = await import("@fenceline/contracts");
  const policy = Policy.parse(options.policy);
  sim = await startSimFleetOnNats({
    url: nats.url,
    connectionName: "power-lab-agents",
    nodes,
    cluster,
    policy,
    rebootMs: options.rebootMs ?? 500,
    // A machine that boots again starts its kubelet only once the engine lets it (fenceline agent --gate).
    bootGate: true,
    log: quiet,
    onStep: (now) => violations.push(...checkInvariants(cluster, now).violations),
  });

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
  const waitFor = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000) => {
    const until = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > until)
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what}: ${JSON.stringify([...(await states())])}\n${stderr.slice(-3000)}`,
        );
      await sleep(100);
    }
  };
  const lab: PowerLab = {
    nats,
    nc,
    cluster,
    api,
    sim,
    bmcs,
    nodes,
    dir,
    violations,
    log: () => stderr,
    states,
    audit: async (node) =>
      (await readStream(nc, Streams.audit, Subjects.audit(node))).map((m) => AuditRecord.parse(m.data)).sort((a, b) => a.seq - b.seq),
    events: async (node) => (await readStream(nc, Streams.events, Subjects.storedEvent(node))).map((m) => NodeEvent.parse(m.data)),
    waitFor,
    async stop() {
      await sim?.stop();
      up.kill("SIGINT");
      await Promise.race([new Promise((r) => up.once("close", r)), sleep(10_000)]);
      if (up.exitCode === null) up.kill("SIGKILL");
      await Promise.all([...bmcs.values()].map((b) => b.stop()));
      await api.stop();
      await nc.drain().catch(() => {});
      await nats.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor("every node healthy", async () => {
      const s = await states();
      return nodes.every((n) => s.get(n) === "healthy");
    });
  } catch (err) {
    await lab.stop();
    throw err;
  }
  return lab;
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
