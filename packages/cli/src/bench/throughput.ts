import { availableParallelism } from "node:os";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import type { AuditRecord } from "@fenceline/contracts";
import { createLogger, publishEvent } from "@fenceline/bus";
import { createDecider, fold, runEngine, type NodeSnapshot } from "@fenceline/engine";
import { Streams, Subjects, eventPartitions, provisionStreams } from "@fenceline/streams";
import { humanOutput, intOption, parseBench, printJson, table } from "../args.js";
import { readAudit } from "../commands/audit.js";
import { idleClock, withBenchNats } from "./bench-nats.js";
import { HistoryGenerator, type HistoryItem } from "./history.js";
import { processCpuMs, ratio } from "./measure.js";

const USAGE = `usage: fenceline bench throughput [--events N] [--nodes N] [--batch N] [--seed N] [--json]

Events per second through the full engine against a bare JetStream consume-and-ack loop, side by
side on the same nats-server (started here, temporary store) and the same pre-published events:
a synthetic but valid history (see \`fenceline bench replay\`) in FL_EVENTS.
  bare    one durable pull consumer on FL_EVENTS: receive each message and ack it, nothing else
  engine  the partitioned engine (one instance, all ${eventPartitions()} partitions): consume in batches, fold,
          publish commands and audit records, save each node's last snapshot, ack the batch
The bare loop runs before and after the engine; its figure is the mean of the two. The engine's
time includes its start (leases, consumers). Its logs are off (warn level), its timers idle.
Prints a table; with --json the table goes to stderr and stdout is one JSON document,
{ "engineEventsPerSec": n, "bareEventsPerSec": n, "ratio": n }.
  --events N  events (default 50000)
  --nodes N   fleet size (default 1000)
  --batch N   most events per engine batch and partition (default 256)
  --seed N    seed of the history (default 1)`;

const int = (value: unknown, name: string, fallback: number, min: number) => intOption(value, name, fallback, min, USAGE);

export type ThroughputResult = {
  events: number;
  nodes: number;
  bareEventsPerSec: number;
  bareRuns: number[];
  engineEventsPerSec: number;
  ratio: number;
  engineMs: number;
  engineStartMs: number;
  foldOnlyEventsPerSec: number;
  divergences: number;
  batches: number;
  meanBatch: number;
  snapshotWrites: number;
  commands: number;
  audit: number;
  clientCpuMsPerKEvent: { bare: number; engine: number };
  serverCpuMsPerKEvent: { bare: number | null; engine: number | null };
};

export async function runThroughputBench(options: { events: number; nodes: number; batch: number; seed: number }): Promise<ThroughputResult> {
  const log = createLogger("bench", { level: "warn" });
  return withBenchNats(log, async ({ server, connect }) => {
    const nc = await connect("bench-throughput");
    await provisionStreams(nc);
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);

    // The history, published in order (pipelined on one connection: stream sequence = index + 1).
    const generator = new HistoryGenerator({ nodes: options.nodes, seed: options.seed });
    const items: HistoryItem[] = generator.next(options.events);
    for (let i = 0; i < items.length; i += 1_000) {
      const acks = await Promise.all(items.slice(i, i + 1_000).map((item) => publishEvent(js, item.event)));
      acks.forEach((ack, j) => {
        if (ack.seq !== items[i + j]!.seq) throw new Error(`event ${items[i + j]!.seq} stored as ${ack.seq}`);
      });
    }

    // The decide step alone, in memory, for reference.
    const decider = createDecider(generator.policy);
    const states = new Map<string, NodeSnapshot | null>();
    let t = performance.now();
    for (const { event, seq } of items) states.set(event.node, fold(decider, states.get(event.node) ?? null, event, seq).snapshot);
    const foldOnlyEventsPerSec = Math.round(items.length / ((performance.now() - t) / 1000));

    const bare = async (run: number) => {
      const name = `bench-bare-${run}`;
      await jsm.consumers.add(Streams.events, { durable_name: name, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: Subjects.eventAll, max_ack_pending: 20_000 });
      const bnc = await connect(name);
      const consumer = await jetstream(bnc).consumers.get(Streams.events, name);
      const cpu = process.cpuUsage();
      const serverCpu = processCpuMs(server.pid);
      const started = performance.now();
      let count = 0;
      const messages = await consumer.consume({ max_messages: 1_000 });
      for await (const m of messages as AsyncIterable<JsMsg>) {
        m.ack();
        if (++count === items.length) break;
      }
      await bnc.flush();
      const ms = performance.now() - started;
      const used = process.cpuUsage(cpu);
      const serverAfter = processCpuMs(server.pid);
      messages.stop();
      await jsm.consumers.delete(Streams.events, name);
      return { perSec: items.length / (ms / 1000), cpuMs: (used.user + used.system) / 1000, serverMs: serverCpu !== null && serverAfter !== null ? serverAfter - serverCpu : null };
    };

    const before = await bare(1);

    // The engine: one instance, every partition.
    const enc = await connect("bench-engine");
    let applied = 0;
    let batches = 0;
    let batched = 0;
    let snapshotWrites = 0;
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const cpu = process.cpuUsage();
    const serverCpu = processCpuMs(server.pid);
    const started = performance.now();
    const engine = await runEngine({
      nc: enc,
      policy: generator.policy,
      log,
      clock: idleClock,
      instanceId: "bench",
      batchSize: options.batch,
      onBatch: (outcome, _p, size) => {
        batches += 1;
        batched += size;
        snapshotWrites += new Set(outcome.applied.map((r) => r.audit.node)).size;
        applied += outcome.applied.length + outcome.skipped;
        if (applied >= items.length) done();
      },
    });
    const engineStartMs = performance.now() - started;
    await finished;
    const engineMs = performance.now() - started;
    const used = process.cpuUsage(cpu);
    const serverAfter = processCpuMs(server.pid);
    await engine.stop();

    const after = await bare(2);

    // Check the engine's audit trail against the history's.
    const audit: AuditRecord[] = [];
    for await (const record of readAudit(server.url, {})) audit.push(record);
    const expected = new Map(items.map((i) => [i.seq, i.audit]));
    let divergences = 0;
    for (const record of audit) {
      const want = expected.get(record.seq);
      if (!want || want.from !== record.from || want.to !== record.to || want.commands.map((c) => c.id).join() !== record.commands.map((c) => c.id).join()) divergences += 1;
    }
    divergences += Math.max(0, items.length - audit.length);
    const commands = (await jsm.streams.info(Streams.commands)).state.messages;

    const bareEventsPerSec = Math.round((before.perSec + after.perSec) / 2);
    const engineEventsPerSec = Math.round(items.length / (engineMs / 1000));
    const perK = (ms: number | null) => (ms === null ? null : Math.round((ms / items.length) * 1000 * 10) / 10);
    return {
      events: items.length,
      nodes: options.nodes,
      bareEventsPerSec,
      bareRuns: [Math.round(before.perSec), Math.round(after.perSec)],
      engineEventsPerSec,
      ratio: ratio(engineEventsPerSec, bareEventsPerSec),
      engineMs: Math.round(engineMs),
      engineStartMs: Math.round(engineStartMs),
      foldOnlyEventsPerSec,
      divergences,
      batches,
      meanBatch: batches > 0 ? Math.round((batched / batches) * 10) / 10 : 0,
      snapshotWrites,
      commands,
      audit: audit.length,
      clientCpuMsPerKEvent: { bare: perK((before.cpuMs + after.cpuMs) / 2)!, engine: perK((used.user + used.system) / 1000)! },
      serverCpuMsPerKEvent: {
        bare: before.serverMs !== null && after.serverMs !== null ? perK((before.serverMs + after.serverMs) / 2) : null,
        engine: serverCpu !== null && serverAfter !== null ? perK(serverAfter - serverCpu) : null,
      },
    };
  });
}

/**
 * What this machine's cores allow at most when the engine and nats-server share them: cores /
 * (client + server CPU per event), and that as a ratio to the bare loop. An upper bound (it
 * assumes every core busy with nothing else), to read the measured ratio against.
 */
function ceilingOf(r: ThroughputResult): string {
  const server = r.serverCpuMsPerKEvent.engine;
  if (server === null) return "n/a (no /proc)";
  const cores = availableParallelism();
  const perSec = Math.round((cores * 1_000_000) / (r.clientCpuMsPerKEvent.engine + server));
  return `${perSec} events/s on ${cores} cores shared with nats-server (ratio ${ratio(perSec, r.bareEventsPerSec)}): cores / CPU per event`;
}

/** `fenceline bench throughput`: returns the exit code (1 when the engine's audit diverged from the history). */
export async function benchThroughput(argv: string[]): Promise<number> {
  const values = parseBench(argv, "throughput", { events: { type: "string" }, nodes: { type: "string" }, batch: { type: "string" }, seed: { type: "string" }, json: { type: "boolean" } }, USAGE);
  if (!values) return 0;
  const r = await runThroughputBench({
    events: int(values.events, "events", 50_000, 1),
    nodes: int(values.nodes, "nodes", 1_000, 1),
    batch: int(values.batch, "batch", 256, 1),
    seed: int(values.seed, "seed", 1, 0),
  });
  const cpu = (ms: number | null) => (ms === null ? "n/a" : `${ms} ms`);
  humanOutput(values.json).write(
    `${table(
      [
        ["events, nodes", `${r.events} over ${r.nodes} nodes (pre-published in FL_EVENTS)`],
        ["bare consume + ack", `${r.bareEventsPerSec} events/s (runs: ${r.bareRuns.join(", ")})`],
        ["engine", `${r.engineEventsPerSec} events/s (${r.engineMs} ms, of which start ${r.engineStartMs} ms)`],
        ["ratio engine / bare", String(r.ratio)],
        ["fold alone, in memory", `${r.foldOnlyEventsPerSec} events/s`],
        ["engine batches", `${r.batches}, ${r.meanBatch} events each on average`],
        ["JetStream writes", `${r.audit} audit records, ${r.commands} commands, ${r.snapshotWrites} snapshots (coalesced from ${r.events}), ${r.batches} acks`],
        ["client CPU / 1000 events", `bare ${cpu(r.clientCpuMsPerKEvent.bare)}, engine ${cpu(r.clientCpuMsPerKEvent.engine)}`],
        ["nats-server CPU / 1000 events", `bare ${cpu(r.serverCpuMsPerKEvent.bare)}, engine ${cpu(r.serverCpuMsPerKEvent.engine)}`],
        ["CPU-bound ceiling", ceilingOf(r)],
        ["audit vs history", r.divergences === 0 ? "identical" : `${r.divergences} divergences`],
      ],
      ["THROUGHPUT BENCHMARK", ""],
    )}\n`,
  );
  if (values.json) printJson({ engineEventsPerSec: r.engineEventsPerSec, bareEventsPerSec: r.bareEventsPerSec, ratio: r.ratio });
  return r.divergences === 0 ? 0 : 1;
}
