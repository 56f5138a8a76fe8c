import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, createLogger, startNatsServer, type NatsServer } from "@fenceline/bus";
import { startSimFleetOnNats, type SimFleetOnNats, type SimFleetOnNatsOptions } from "@fenceline/cli";
import { AuditRecord, NodeEvent, Policy, type PolicyInput } from "@fenceline/contracts";
import { checkInvariants, startIpmiSimBmc, type ClusterTruth, type IpmiSimBmc, type Violation } from "@fenceline/sim";
import { Buckets, Streams, Subjects } from "@fenceline/streams";
import { CLI, ROOT } from "../e2e/cli.js";
import { readStream } from "./read-stream.js";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export type UpLab = {
  nats: NatsServer;
  nc: NatsConnection;
  sim: SimFleetOnNats;
  /** Each machine's BMC (ipmi_sim), powering it off and on; empty without `devices`. */
  bmcs: Map<string, IpmiSimBmc>;
  /** The lab's temporary directory (removed by `stop`). */
  dir: string;
  violations: Violation[];
  /** What `fenceline up` wrote to stderr (its JSON log lines). */
  log(): string;
  /** Each node's top-level state, from the engine's snapshots. */
  states(): Promise<Map<string, string>>;
  audit(node: string): Promise<AuditRecord[]>;
  events(node: string): Promise<NodeEvent[]>;
  /** Polls `check`; on timeout the error carries the nodes' states and the end of `up`'s log. */
  waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs?: number): Promise<void>;
  /** Stops the fleet, `fenceline up`, the BMCs and nats-server; removes the directory. */
  stop(): Promise<void>;
};

export type UpLabOptions = {
  /** Names the connections, the logger and the directory. */
  name: string;
  /** The machines: the simulated fleet's, each with a BMC when there are `devices`. */
  nodes: string[];
  /** Their workloads (checked against the invariants): the cluster model, or kube-lab's kubelets on the real control plane. */
  cluster: SimFleetOnNatsOptions["cluster"] & ClusterTruth;
  policy: PolicyInput;
  /** What the agents take their timings from (default: `policy`). */
  agentPolicy?: Pick<Policy, "agent" | "heartbeat">;
  /** `fenceline up`'s cluster arguments (`--kubeconfig FILE`, a node selector), given the lab's directory. */
  upArgs: (dir: string) => string[];
  /** The fence devices file, given each machine's BMC: without it, no BMCs and no `--fence-devices`. */
  devices?: (bmcs: Map<string, IpmiSimBmc>) => unknown;
  rebootMs?: number;
  /** A machine that boots again starts its kubelet only once the engine lets it (fenceline agent --gate). */
  bootGate?: boolean;
  /** How long `waitFor` waits when not told (default 30 s). */
  waitTimeoutMs?: number;
  /** Awaited before the lab is returned (the lab is stopped if it never holds). */
  ready?: { what: string; check: (lab: UpLab) => boolean | Promise<boolean>; timeoutMs?: number };
};

/**
 * A real nats-server; `fenceline up` as a user runs it (the built CLI: `--kubeconfig`, and
 * `--fence-devices` when there are BMCs); a simulated fleet whose machines run the real agent over
 * NATS, checked against the invariants on every step; and, with `devices`, an ipmi_sim BMC per
 * machine on a loopback UDP port whose chassis power control powers that machine off and on. The
 * cluster is the caller's: the simulated API server (test/fencing) or the real control plane
 * (test/kubernetes).
 */
export async function startUpLab(options: UpLabOptions): Promise<UpLab> {
  const { name, nodes } = options;
  const dir = await mkdtemp(join(tmpdir(), `fl-${name}-`));
  const quiet = createLogger(name, { level: "silent" });
  const bmcs = new Map<string, IpmiSimBmc>();
  const violations: Violation[] = [];
  let nats: NatsServer | undefined;
  let nc: NatsConnection | undefined;
  let up: ChildProcess | undefined;
  let sim: SimFleetOnNats | undefined;
  let stderr = "";

  /** Stops whatever has started, in the reverse order. */
  const stop = async () => {
    await sim?.stop();
    if (up) {
      const exited = () => up!.exitCode !== null || up!.signalCode !== null;
      up.kill("SIGINT");
      if (!exited()) await Promise.race([new Promise((r) => up!.once("close", r)), sleep(10_000)]);
      if (!exited()) up.kill("SIGKILL");
    }
    await Promise.all([...bmcs.values()].map((b) => b.stop()));
    await nc?.drain().catch(() => {});
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  };

  try {
    nats = await startNatsServer({ log: quiet });
    nc = await connectNats(nats.url, { name });
    const upArgs = ["--condition-duration", "0s", "--metrics-port", "0", ...options.upArgs(dir)];
    if (options.devices) {
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
      await writeFile(devicesFile, JSON.stringify(options.devices(bmcs), null, 2));
      upArgs.push("--fence-devices", devicesFile);
    }
    const policyFile = join(dir, "policy.json");
    await writeFile(policyFile, JSON.stringify(options.policy));

    up = spawn(process.execPath, [CLI, "up", "--server", nats.url, "--policy", policyFile, ...upArgs], {
      cwd: ROOT,
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, FENCELINE_LOG_LEVEL: "info" },
    });
    up.stderr!.on("data", (d) => (stderr += d));

    sim = await startSimFleetOnNats({
      url: nats.url,
      connectionName: `${name}-agents`,
      nodes,
      cluster: options.cluster,
      policy: options.agentPolicy ?? Policy.parse(options.policy),
      rebootMs: options.rebootMs ?? 500,
      ...(options.bootGate ? { bootGate: true } : {}),
      log: quiet,
      onStep: (now) => violations.push(...checkInvariants(options.cluster, now).violations),
    });
  } catch (err) {
    await stop();
    throw err;
  }
  const started = { nats, nc, sim };

  const states = async () => {
    const out = new Map<string, string>();
    try {
      const kv = await new Kvm(started.nc).open(Buckets.nodes);
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
  const waitFor = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = options.waitTimeoutMs ?? 30_000) => {
    const until = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > until)
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what}: ${JSON.stringify([...(await states())])}\n${stderr.slice(-3000)}`,
        );
      await sleep(100);
    }
  };
  const lab: UpLab = {
    ...started,
    bmcs,
    dir,
    violations,
    log: () => stderr,
    states,
    audit: async (node) =>
      (await readStream(started.nc, Streams.audit, Subjects.audit(node)))
        .map((m) => AuditRecord.parse(m.data))
        .sort((a, b) => a.seq - b.seq),
    events: async (node) => (await readStream(started.nc, Streams.events, Subjects.storedEvent(node))).map((m) => NodeEvent.parse(m.data)),
    waitFor,
    stop,
  };
  if (options.ready) {
    const { what, check, timeoutMs } = options.ready;
    try {
      await waitFor(what, () => check(lab), timeoutMs);
    } catch (err) {
      await lab.stop();
      throw err;
    }
  }
  return lab;
}
