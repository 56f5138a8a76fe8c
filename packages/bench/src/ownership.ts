import { fork, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { jetstream, jetstreamManager, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { NODE_EVENT_TYPES, NodeEvent, parseMessage, type AuditRecord } from "@fenceline/contracts";
import { connectNats, createLogger, publishEvent, startNatsCluster, startNatsServer, type Logger } from "@fenceline/bus";
import { Consumers, Streams, provisionStreams } from "@fenceline/streams";
import { UsageError, humanOutput, intOption, parseBench, printJson, table } from "@fenceline/command-line";
import { HistoryGenerator } from "@fenceline/testing";
import type { InstanceArgs, InstanceReport } from "./ownership-instance.js";

const USAGE = `usage: fenceline bench ownership [--lease-ms MS] [--rate N] [--nodes N] [--mode both|leases|pinned] [--json]

How engine instances share the partitions of FL_EVENTS, measured side by side on the same
nats-server version: KV leases (FL_LEASES, what the engine does) against consumer pinning
(nats-server priority groups, priority_policy pinned_client, priority_timeout = the lease
time). For each, three engine instances run as child processes while a synthetic history is
published at --rate events/s:
  kill      one nats-server; the instance owning the most partitions is killed with SIGKILL
            mid-stream: how long until each of its partitions applies events again (takeover),
            how partitions were spread before, events delivered again (redeliveries);
  idle      then the instance owning the most partitions is killed while no event arrives:
            how many partitions have no owner 2 lease times later;
  restart   a three-server cluster (R3, 6 partitions); the server leading the most engine
            consumers is killed with SIGKILL and restarted 2 s later: partitions that changed
            owner, the longest delay from an event's publish to its batch, redeliveries.
Every run checks FL_AUDIT: each event audited once, each node's records in event order.
Prints a table; with --json the table goes to stderr and stdout is one JSON document,
{ "leases": {...}, "pinned": {...}, "natsServerVersion": s }.
  --lease-ms MS  lease time and priority_timeout (default 3000)
  --rate N       events published per second (default 500)
  --nodes N      fleet size of the history (default 300)
  --mode M       both (default), leases or pinned`;

const PARTITIONS = 16;
const CLUSTER_PARTITIONS = 6;
const INSTANCE_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), "ownership-instance.js");

type Mode = "leases" | "pinned";
export type Checks = {
  events: number;
  audited: number;
  missing: number;
  duplicateAudits: number;
  orderViolations: number;
  redeliveries: number;
  appliedTwice: number;
};
export type KillResult = {
  spreadBefore: number[];
  victimPartitions: number;
  takeoverMs: { median: number | null; max: number | null; untaken: number };
  idleUnownedAfterMs: { afterMs: number; unowned: number };
  checks: Checks;
};
export type RestartResult = { ownerChanges: number; maxDelayMs: number; p99DelayMs: number; checks: Checks };
export type ModeResult = { kill: KillResult; restart: RestartResult };
export type OwnershipResult = { leaseMs: number; rate: number; natsServerVersion: string } & Partial<Record<Mode, ModeResult>>;

type Instance = { id: string; child: ChildProcess; alive: boolean; owned: number[]; ready: Promise<void> };

/** Three instances, their reports, and the publisher of the history. */
class Run {
  readonly instances: Instance[] = [];
  readonly batches: Array<InstanceReport & { type: "batch"; instance: string }> = [];
  readonly ownerChanges: Array<{ at: number; instance: string; owned: number[] }> = [];
  readonly publishedAt = new Map<number, number>();
  readonly generator: HistoryGenerator;
  #publishing = false;
  #publisher: Promise<void> = Promise.resolve();

  constructor(
    readonly nc: NatsConnection,
    readonly url: string,
    readonly options: { mode: Mode; leaseMs: number; partitions: number; nodes: number; rate: number },
  ) {
    this.generator = new HistoryGenerator({ nodes: options.nodes, seed: 7 });
  }

  spawn(id: string): Instance {
    const args: InstanceArgs = {
      url: this.url,
      instanceId: id,
      ownership: this.options.mode,
      leaseMs: this.options.leaseMs,
      partitions: this.options.partitions,
    };
    const child = fork(INSTANCE_SCRIPT, [JSON.stringify(args)], { stdio: ["ignore", "ignore", "inherit", "ipc"] });
    let ready!: () => void;
    const instance: Instance = { id, child, alive: true, owned: [], ready: new Promise((resolve) => (ready = resolve)) };
    child.on("message", (m: InstanceReport) => {
      if (m.type === "batch") this.batches.push({ ...m, instance: id });
      else {
        instance.owned = m.owned;
        this.ownerChanges.push({ at: m.at, instance: id, owned: m.owned });
        if (m.type === "ready") ready();
      }
    });
    child.on("exit", () => (instance.alive = false));
    this.instances.push(instance);
    return instance;
  }

  owners(): Map<number, string> {
    const out = new Map<number, string>();
    for (const i of this.instances) if (i.alive) for (const p of i.owned) out.set(p, i.id);
    return out;
  }

  kill(instance: Instance): number {
    instance.child.kill("SIGKILL");
    instance.alive = false;
    return Date.now();
  }

  /** Publishes the history at the configured rate until `stop` (a failed publish is retried with the same id). */
  startPublishing(): void {
    this.#publishing = true;
    const js = jetstream(this.nc);
    const tickMs = 50;
    const perTick = Math.max(1, Math.round((this.options.rate * tickMs) / 1000));
    this.#publisher = (async () => {
      while (this.#publishing) {
        const started = Date.now();
        for (const item of this.generator.next(perTick)) {
          for (;;) {
            try {
              const ack = await publishEvent(js, item.event);
              if (!this.publishedAt.has(ack.seq)) this.publishedAt.set(ack.seq, Date.now());
              break;
            } catch {
              await sleep(100);
            }
          }
        }
        await sleep(Math.max(0, tickMs - (Date.now() - started)));
      }
    })();
  }

  async stopPublishing(): Promise<void> {
    this.#publishing = false;
    await this.#publisher;
  }

  /** Waits until every published event was applied (or skipped as applied) by someone. */
  async drained(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const seen = new Set(this.batches.flatMap((b) => b.applied));
      if ([...this.publishedAt.keys()].every((s) => seen.has(s))) return;
      await sleep(200);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.instances
        .filter((i) => i.alive)
        .map(
          (i) =>
            new Promise<void>((resolve) => {
              const timer = setTimeout(() => (i.child.kill("SIGKILL"), resolve()), 10_000);
              i.child.once("exit", () => (clearTimeout(timer), resolve()));
              i.child.send("stop");
            }),
        ),
    );
  }

  /** FL_AUDIT against FL_EVENTS, and redeliveries from the instances' batch reports. */
  async checks(jsm: JetStreamManager): Promise<Checks> {
    const events = (await readAll(jsm, Streams.events))
      .filter((m) => parseMessage(NodeEvent, m.data, { knownTypes: NODE_EVENT_TYPES }).ok)
      .map((m) => m.seq);
    const audit = (await readAll(jsm, Streams.audit)).map((m) => JSON.parse(new TextDecoder().decode(m.data)) as AuditRecord);
    const audited = new Map<number, number>();
    for (const r of audit) audited.set(r.seq, (audited.get(r.seq) ?? 0) + 1);
    const last = new Map<string, number>();
    let orderViolations = 0;
    for (const r of audit) {
      if ((last.get(r.node) ?? 0) >= r.seq) orderViolations += 1;
      last.set(r.node, r.seq);
    }
    const applied = new Map<number, number>();
    for (const b of this.batches) for (const s of b.applied) applied.set(s, (applied.get(s) ?? 0) + 1);
    return {
      events: events.length,
      audited: audited.size,
      missing: events.filter((s) => !audited.has(s)).length,
      duplicateAudits: [...audited.values()].filter((n) => n > 1).length,
      orderViolations,
      redeliveries: this.batches.reduce((n, b) => n + b.skipped, 0) + [...applied.values()].reduce((n, k) => n + k - 1, 0),
      appliedTwice: [...applied.values()].filter((n) => n > 1).length,
    };
  }
}

async function readAll(jsm: JetStreamManager, stream: string): Promise<StoredMsg[]> {
  const { state } = await jsm.streams.info(stream);
  const out: StoredMsg[] = [];
  if (state.messages === 0) return out;
  for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (m) out.push(m);
  }
  return out;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (xs: number[]) => (xs.length === 0 ? null : [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!);
const percentile = (xs: number[], q: number) =>
  xs.length === 0 ? 0 : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

async function waitUntil(what: string, condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`bench ownership: timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

const provision = (nc: NatsConnection, mode: Mode, leaseMs: number, partitions: number, replicas: number) =>
  provisionStreams(nc, {
    partitions,
    replicas,
    ...(mode === "pinned" ? { ownership: { kind: "pinned" as const, pinnedTimeoutMs: leaseMs } } : {}),
  });

async function killScenario(mode: Mode, options: { leaseMs: number; rate: number; nodes: number }, log: Logger): Promise<KillResult> {
  const server = await startNatsServer({ log });
  const nc = await connectNats(server.url, { name: "bench-ownership" });
  const run = new Run(nc, server.url, { mode, leaseMs: options.leaseMs, partitions: PARTITIONS, nodes: options.nodes, rate: options.rate });
  try {
    await provision(nc, mode, options.leaseMs, PARTITIONS, 1);
    for (const id of ["a", "b", "c"]) await run.spawn(id).ready;
    run.startPublishing();
    // Every partition owned (pinning assigns owners with the first deliveries), then a steady moment.
    await waitUntil("every partition to have an owner", () => run.owners().size === PARTITIONS, 10 * options.leaseMs);
    await sleep(options.leaseMs);
    const spreadBefore = run.instances.map((i) => i.owned.length);
    const victim = [...run.instances].sort((x, y) => y.owned.length - x.owned.length)[0]!;
    const victimPartitions = [...victim.owned];
    const killedAt = run.kill(victim);
    await sleep(2 * options.leaseMs + 2_000);
    const takeovers = victimPartitions.map((p) => {
      const first = run.batches.find((b) => b.partition === p && b.instance !== victim.id && b.at >= killedAt && b.applied.length > 0);
      return first ? first.at - killedAt : null;
    });
    const taken = takeovers.filter((t): t is number => t !== null);
    await run.stopPublishing();
    await run.drained(10 * options.leaseMs);

    // Idle: kill the busiest survivor while nothing is published.
    await sleep(options.leaseMs);
    const second = [...run.instances].filter((i) => i.alive).sort((x, y) => y.owned.length - x.owned.length)[0]!;
    run.kill(second);
    const afterMs = 2 * options.leaseMs;
    await sleep(afterMs);
    const unowned = PARTITIONS - run.owners().size;

    const jsm = await jetstreamManager(nc);
    return {
      spreadBefore,
      victimPartitions: victimPartitions.length,
      takeoverMs: { median: median(taken), max: taken.length > 0 ? Math.max(...taken) : null, untaken: takeovers.length - taken.length },
      idleUnownedAfterMs: { afterMs, unowned },
      checks: await run.checks(jsm),
    };
  } finally {
    await run.stop();
    await nc.close().catch(() => {});
    await server.stop();
  }
}

async function restartScenario(mode: Mode, options: { leaseMs: number; rate: number; nodes: number }, log: Logger): Promise<RestartResult> {
  const cluster = await startNatsCluster(`bench-${mode}`, { log });
  const nc = await connectNats(cluster.url, { name: "bench-ownership" });
  const run = new Run(nc, cluster.url, {
    mode,
    leaseMs: options.leaseMs,
    partitions: CLUSTER_PARTITIONS,
    nodes: options.nodes,
    rate: options.rate,
  });
  try {
    await provision(nc, mode, options.leaseMs, CLUSTER_PARTITIONS, 3);
    for (const id of ["a", "b", "c"]) await run.spawn(id).ready;
    run.startPublishing();
    await waitUntil("every partition to have an owner", () => run.owners().size === CLUSTER_PARTITIONS, 10 * options.leaseMs);
    await sleep(options.leaseMs);
    const jsm = await jetstreamManager(nc);
    // The server that leads the most engine consumers.
    const leaders = new Map<string, number>();
    for (let p = 0; p < CLUSTER_PARTITIONS; p++) {
      const leader = (await jsm.consumers.info(Streams.events, Consumers.enginePartition(p))).cluster?.leader ?? "n0";
      leaders.set(leader, (leaders.get(leader) ?? 0) + 1);
    }
    const victim = Number([...leaders].sort((a, b) => b[1] - a[1])[0]![0].slice(1));
    const changesBefore = run.ownerChanges.length;
    const ownersBefore = run.owners();
    const killedAt = Date.now();
    process.kill(cluster.servers[victim]!.pid, "SIGKILL");
    await sleep(2_000);
    await cluster.restart(victim);
    await sleep(2 * options.leaseMs + 3_000);
    await run.stopPublishing();
    await run.drained(20 * options.leaseMs);

    // Owner changes: partitions whose owner after the restart differs, plus every hand-over reported meanwhile.
    let ownerChanges = 0;
    const current = new Map(ownersBefore);
    for (const change of run.ownerChanges.slice(changesBefore)) {
      for (const p of change.owned) if (current.get(p) !== change.instance) current.set(p, change.instance), (ownerChanges += 1);
    }
    const appliedAt = new Map<number, number>();
    for (const b of run.batches) for (const s of b.applied) if (!appliedAt.has(s)) appliedAt.set(s, b.at);
    const delays = [...run.publishedAt]
      .filter(([, at]) => at >= killedAt - 1_000)
      .map(([seq, at]) => (appliedAt.get(seq) ?? Date.now()) - at);
    return {
      ownerChanges,
      maxDelayMs: delays.length > 0 ? Math.max(...delays) : 0,
      p99DelayMs: percentile(delays, 0.99),
      checks: await run.checks(jsm),
    };
  } finally {
    await run.stop();
    await nc.close().catch(() => {});
    await cluster.stop();
  }
}

export async function runOwnershipBench(options: {
  leaseMs: number;
  rate: number;
  nodes: number;
  modes: Mode[];
  progress?: (line: string) => void;
}): Promise<OwnershipResult> {
  const log = createLogger("bench", { level: "error" });
  const probe = await startNatsServer({ log, jetstream: false });
  const pnc = await connectNats(probe.url, { name: "bench-ownership-version" });
  const natsServerVersion = pnc.info?.version ?? "unknown";
  await pnc.close();
  await probe.stop();
  const result: OwnershipResult = { leaseMs: options.leaseMs, rate: options.rate, natsServerVersion };
  for (const mode of options.modes) {
    options.progress?.(`${mode}: kill and idle on one server`);
    const kill = await killScenario(mode, options, log);
    options.progress?.(`${mode}: server restart in a 3-server cluster`);
    const restart = await restartScenario(mode, options, log);
    result[mode] = { kill, restart };
  }
  return result;
}

const int = (value: unknown, name: string, fallback: number, min: number) => intOption(value, name, fallback, min, USAGE);

/** `fenceline bench ownership`: exit code 1 when an event was lost or audited out of order. */
export async function benchOwnership(argv: string[]): Promise<number> {
  const values = parseBench(
    argv,
    "ownership",
    {
      "lease-ms": { type: "string" },
      rate: { type: "string" },
      nodes: { type: "string" },
      mode: { type: "string" },
      json: { type: "boolean" },
    },
    USAGE,
  );
  if (!values) return 0;
  const mode = (values.mode as string | undefined) ?? "both";
  const modes: Mode[] = mode === "both" ? ["leases", "pinned"] : mode === "leases" || mode === "pinned" ? [mode] : [];
  if (modes.length === 0) {
    throw new UsageError(`--mode must be both, leases or pinned, got "${mode}"\n\n${USAGE}`);
  }
  const out = humanOutput(values.json);
  const r = await runOwnershipBench({
    leaseMs: int(values["lease-ms"], "lease-ms", 3_000, 500),
    rate: int(values.rate, "rate", 500, 1),
    nodes: int(values.nodes, "nodes", 300, 1),
    modes,
    progress: (line) => out.write(`bench ownership: ${line}\n`),
  });
  const ms = (v: number | null) => (v === null ? "-" : `${v} ms`);
  const checks = (c: Checks) =>
    `${c.events} events, ${c.missing} not audited, ${c.duplicateAudits} audited twice, ${c.orderViolations} out of order`;
  const rows: string[][] = [
    ["nats-server", r.natsServerVersion],
    ["lease / priority_timeout", `${r.leaseMs} ms; ${r.rate} events/s`],
  ];
  for (const m of modes) {
    const x = r[m]!;
    rows.push(
      [`${m}: spread before the kill`, x.kill.spreadBefore.join(" / ")],
      [
        `${m}: takeover after kill -9`,
        `median ${ms(x.kill.takeoverMs.median)}, max ${ms(x.kill.takeoverMs.max)} over ${x.kill.victimPartitions} partitions${x.kill.takeoverMs.untaken ? `, ${x.kill.takeoverMs.untaken} never` : ""}`,
      ],
      [`${m}: redeliveries (kill)`, `${x.kill.checks.redeliveries} (applied twice: ${x.kill.checks.appliedTwice})`],
      [
        `${m}: idle partitions unowned`,
        `${x.kill.idleUnownedAfterMs.unowned} of ${PARTITIONS}, ${x.kill.idleUnownedAfterMs.afterMs} ms after their owner died`,
      ],
      [`${m}: audit (kill)`, checks(x.kill.checks)],
      [`${m}: server restart: owner changes`, String(x.restart.ownerChanges)],
      [`${m}: server restart: event delay`, `p99 ${x.restart.p99DelayMs} ms, max ${x.restart.maxDelayMs} ms`],
      [`${m}: redeliveries (restart)`, `${x.restart.checks.redeliveries} (applied twice: ${x.restart.checks.appliedTwice})`],
      [`${m}: audit (restart)`, checks(x.restart.checks)],
    );
  }
  out.write(`${table(rows, ["OWNERSHIP BENCHMARK", ""])}\n`);
  if (values.json) printJson(r);
  const bad = modes.some((m) =>
    [r[m]!.kill.checks, r[m]!.restart.checks].some((c) => c.missing > 0 || c.orderViolations > 0 || c.duplicateAudits > 0),
  );
  return bad ? 1 : 0;
}
