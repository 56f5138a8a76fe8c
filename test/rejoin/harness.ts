import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { createCommandProvisioner } from "@fenceline/actuators";
import { connectNats, createLogger, publishEvent, startNatsServer, type NatsServer } from "@fenceline/bus";
import { startControlPlane, startSimFleetOnNats, type ControlPlane } from "@fenceline/cli";
import { AuditRecord, NodeEvent, Policy, systemClock } from "@fenceline/contracts";
import { InMemoryCluster, type SimFleet } from "@fenceline/sim";
import { Streams, Subjects } from "@fenceline/streams";
import { readStream } from "../support/read-stream.js";

/**
 * Timings for the rejoin tests. The agent's control-plane timeout (2 s) is longer than the
 * heartbeat timeout (600 ms), so a network loss of about a second is seen by the engine
 * (suspect) but ends before the agent would fence itself, and before fencing starts (2 s of
 * silence): the "network loss, services kept running" row. Safe time: 2 + 0.5 + 1.5 + 1 = 5 s.
 */
export const REJOIN_POLICY: Policy = Policy.parse({
  version: "rejoin-test",
  heartbeat: { intervalMs: 200, timeoutMs: 600 },
  unhealthyDurationMs: 2_000,
  agent: { controlPlaneTimeoutMs: 2_000, peerRoundMs: 500, watchdogTimeoutMs: 1_500, marginMs: 1_000 },
  remediation: [
    { strategy: "Automatic", timeoutMs: 10_000 },
    { strategy: "ResourceDeletion", timeoutMs: 10_000 },
  ],
  rejoin: { reprovisionTimeoutMs: 15_000, reprovisionAttempts: 3, reprovisionBackoffMs: 300 },
  fleet: { retryMs: 1_000 },
  commandTimeoutMs: 20_000,
});

/** What every agent reports (per service), unless a test says otherwise. */
export const reportedChecksums = (node: string) => ({ app: `app-v1-${node}`, sshd: "sshd-v1" });
export const hostGroupOf = (node: string) => (node.endsWith("-1") || node.endsWith("-2") ? "masters" : "workers");

type Marker = { at: number; step: string; node: string; hostGroup: string };

export type RejoinLab = {
  /** The nats-server's URL (for the CLI's --server). */
  url: string;
  nc: NatsConnection;
  control: ControlPlane;
  fleet: SimFleet;
  cluster: InMemoryCluster;
  dir: string;
  /** Every audit record so far, in arrival order. */
  audit: AuditRecord[];
  nodes: string[];
  /** The node's state after its latest applied event. */
  stateOf(node: string): string | undefined;
  auditOf(node: string, since?: number): AuditRecord[];
  /** Lines the provisioning scripts wrote: cleanup, provision-start, provision. */
  markers(node: string, since?: number): Promise<Marker[]>;
  /** Node events stored in FL_EVENTS (command results included). */
  events(node: string): Promise<NodeEvent[]>;
  publish(event: NodeEvent): Promise<void>;
  /** Makes the next provisioning of `node` fail (until `fixProvisioning`). */
  failProvisioning(node: string): Promise<void>;
  fixProvisioning(node: string): Promise<void>;
  /** Makes the next provisioning of `node` take `seconds` (once). */
  slowProvisioning(node: string, seconds: number): Promise<void>;
  /** Makes every provisioning of `node` take `seconds` more. */
  delayProvisioning(node: string, seconds: number): Promise<void>;
  waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
};

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A real nats-server, the whole control plane (engine, heartbeat detector and node state
 * service, fleet guard, actuators) with a command provisioner running two small shell scripts,
 * and a simulated fleet whose machines run the real agent over NATS against virtual watchdogs.
 */
export async function startRejoinLab(options: { nodes: number; policy?: Policy; rebootMs?: number }): Promise<RejoinLab> {
  const policy = options.policy ?? REJOIN_POLICY;
  const log = createLogger("rejoin-test", { level: process.env.FENCELINE_LOG_LEVEL ?? "silent" });
  const dir = await mkdtemp(join(tmpdir(), "fl-rejoin-"));
  const markerFile = join(dir, "markers");
  await writeFile(markerFile, "");
  // {node} and {hostGroup} are substituted by the provisioner (and checked for shell safety).
  await writeFile(
    join(dir, "cleanup.sh"),
    `#!/bin/sh\necho "$(date +%s%3N) cleanup $1 $2" >> "${markerFile}"\necho "cleanup of $1 done"\n`,
  );
  await writeFile(
    join(dir, "provision.sh"),
    [
      "#!/bin/sh",
      `dir="${dir}"`,
      `echo "$(date +%s%3N) provision-start $1 $2" >> "${markerFile}"`,
      `if [ -f "$dir/fail-$1" ]; then echo "site.yml failed on $1: disk full (test)"; exit 3; fi`,
      `if [ -f "$dir/slow-$1" ]; then s=$(cat "$dir/slow-$1"); rm -f "$dir/slow-$1"; sleep "$s"; fi`,
      `if [ -f "$dir/delay-$1" ]; then sleep "$(cat "$dir/delay-$1")"; fi`,
      `echo "$(date +%s%3N) provision $1 $2" >> "${markerFile}"`,
      `echo "provisioned $1 as $2"`,
      "",
    ].join("\n"),
  );
  await chmod(join(dir, "cleanup.sh"), 0o755);
  await chmod(join(dir, "provision.sh"), 0o755);

  const server: NatsServer = await startNatsServer({ log });
  const nc = await connectNats(server.url, { name: "rejoin-test" });
  const nodes = Array.from({ length: options.nodes }, (_, i) => `node-${i + 1}`);
  const cluster = new InMemoryCluster({ clock: systemClock, nodes });
  const control: ControlPlane = await startControlPlane({
    nc,
    policy,
    log,
    cluster,
    provisioner: createCommandProvisioner({
      cleanup: `${dir}/cleanup.sh {node} {hostGroup}`,
      provision: `${dir}/provision.sh {node} {hostGroup}`,
      timeoutMs: 10_000,
    }),
  });

  const audit: AuditRecord[] = [];
  const auditSub = nc.subscribe(Subjects.auditAll, {
    callback: (err, msg) => {
      if (err) return;
      const parsed = AuditRecord.safeParse(msg.json());
      if (parsed.success) audit.push(parsed.data);
    },
  });

  const sim = await startSimFleetOnNats({
    url: server.url,
    connectionName: "rejoin-test-agents",
    nodes,
    cluster,
    policy,
    rebootMs: options.rebootMs ?? 1_000,
    log,
    stepMs: 50,
    hostGroupOf,
    checksumsOf: reportedChecksums,
  });

  const stateOf = (node: string) => {
    let latest: AuditRecord | undefined;
    for (const r of audit) if (r.node === node && (!latest || r.seq > latest.seq)) latest = r;
    return latest?.to;
  };
  const waitFor = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000) => {
    const end = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > end) {
        const trail = nodes.map((n) => `${n}: ${stateOf(n)}`).join(", ");
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${trail})`);
      }
      await sleep(50);
    }
  };

  const lab: RejoinLab = {
    url: server.url,
    nc,
    control,
    fleet: sim.fleet,
    cluster,
    dir,
    audit,
    nodes,
    stateOf,
    auditOf: (node, since = 0) => audit.filter((r) => r.node === node && r.at >= since).sort((a, b) => a.seq - b.seq),
    markers: async (node, since = 0) =>
      (await readFile(markerFile, "utf8"))
        .split("\n")
        .filter(Boolean)
        .map((line) => {
          const [at, step, n, hostGroup] = line.split(" ");
          return { at: Number(at), step: step!, node: n!, hostGroup: hostGroup! };
        })
        .filter((m) => m.node === node && m.at >= since),
    events: async (node) => (await readStream(nc, Streams.events, Subjects.storedEvent(node))).map((m) => NodeEvent.parse(m.data)),
    publish: async (event) => {
      await publishEvent(jetstream(nc), event);
    },
    failProvisioning: (node) => writeFile(join(dir, `fail-${node}`), "1"),
    fixProvisioning: (node) => rm(join(dir, `fail-${node}`), { force: true }),
    slowProvisioning: (node, seconds) => writeFile(join(dir, `slow-${node}`), String(seconds)),
    delayProvisioning: (node, seconds) => writeFile(join(dir, `delay-${node}`), String(seconds)),
    waitFor,
    async stop() {
      await sim.stop();
      auditSub.unsubscribe();
      await Promise.race([control.stop(), sleep(5_000)]);
      await nc.drain().catch(() => {});
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };

  await waitFor("every node healthy", () => nodes.every((n) => stateOf(n) === "healthy"), 20_000);
  return lab;
}
