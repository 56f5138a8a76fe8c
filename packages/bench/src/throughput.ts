import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import type { AuditRecord } from "@fenceline/contracts";
import { createLogger, publishEvent } from "@fenceline/bus";
import { createDecider, fold, missingEngineNodeFlags, runEngine, type FoldResult, type NodeSnapshot } from "@fenceline/engine";
import { readAuditRecords } from "@fenceline/read-model";
import { Buckets, Consumers, Streams, Subjects, eventPartitions, provisionStreams } from "@fenceline/streams";
import { humanOutput, intOption, parseBench, printJson, table } from "@fenceline/command-line";
import { idleClock, withBenchNats } from "./bench-nats.js";
import { HistoryGenerator, type HistoryItem } from "@fenceline/testing";
import { processCpuMs, ratio } from "./measure.js";
import { runSameWrites } from "./same-writes.js";

const USAGE = `usage: fenceline bench throughput [--events N] [--nodes N] [--batch N] [--seed N] [--json]

Events per second through the full engine against two floors, side by side on the same
nats-server (started here, temporary store) and the same pre-published events: a synthetic but
valid history (see \`fenceline bench replay\`) in FL_EVENTS.
  bare         one durable pull consumer on FL_EVENTS: receive each message and ack it, nothing else
  same writes  exactly the engine's writes without deciding: the ${eventPartitions()} partition consumers in
               batches, the same commands and audit records through the same pipeline, the same
               coalesced snapshot compare-and-sets, one ack per batch (outputs looked up from the
               engine's own fold of the history, computed beforehand; no validation, no fold)
  engine       the partitioned engine (one instance, all ${eventPartitions()} partitions): consume in batches,
               validate, fold, publish commands and audit records, save each node's last snapshot,
               ack the batch
The same writes and the engine first run once each unmeasured (warm-up: neither is measured on
cold code), then the loops alternate (bare, same writes, engine, same writes, engine, bare); each
figure is the mean of its two runs. Last, the same writes run twice more with one PubAck per output instead of
fast batches, to show what the batches save. Every
run starts from empty output streams (so nothing is a duplicate). The engine's time includes its
start (leases, consumers). Its logs are off (warn level), its timers idle.
Prints a table; with --json the table goes to stderr and stdout is one JSON document,
{ "engineEventsPerSec": n, "bareEventsPerSec": n, "sameWritesEventsPerSec": n, "ratio": n,
  "ratioToSameWrites": n, "natsServerVersion": s }.
  --events N  events (default 50000)
  --nodes N   fleet size (default 1000)
  --batch N   most events per engine batch and partition (default 256)
  --seed N    seed of the history (default 1)`;

const int = (value: unknown, name: string, fallback: number, min: number) => intOption(value, name, fallback, min, USAGE);

export type ThroughputResult = {
  events: number;
  nodes: number;
  natsServerVersion: string;
  bareEventsPerSec: number;
  bareRuns: number[];
  sameWritesEventsPerSec: number;
  sameWritesRuns: number[];
  /** The same writes with one PubAck per output (the pipeline), as the engine wrote before fast batches. */
  sameWritesPerMessageAckEventsPerSec: number;
  sameWritesPerMessageAckCpu: { client: number; server: number | null };
  engineEventsPerSec: number;
  engineRuns: number[];
  ratio: number;
  ratioToSameWrites: number;
  engineMs: number;
  engineStartMs: number;
  foldOnlyEventsPerSec: number;
  divergences: number;
  batches: number;
  meanBatch: number;
  snapshotWrites: number;
  commands: number;
  audit: number;
  clientCpuMsPerKEvent: { bare: number; sameWrites: number; engine: number };
  serverCpuMsPerKEvent: { bare: number | null; sameWrites: number | null; engine: number | null };
};

export async function runThroughputBench(options: {
  events: number;
  nodes: number;
  batch: number;
  seed: number;
}): Promise<ThroughputResult> {
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

    // The decide step alone, in memory, for reference; its results are what the same-writes floor writes.
    const decider = createDecider(generator.policy);
    const states = new Map<string, NodeSnapshot | null>();
    const folds = new Map<number, FoldResult>();
    const t = performance.now();
    for (const { event, seq } of items) states.set(event.node, fold(decider, states.get(event.node) ?? null, event, seq).snapshot);
    const foldOnlyEventsPerSec = Math.round(items.length / ((performance.now() - t) / 1000));
    states.clear();
    for (const { event, seq } of items) {
      const result = fold(decider, states.get(event.node) ?? null, event, seq);
      states.set(event.node, result.snapshot);
      folds.set(seq, result);
    }
    const partitions = eventPartitions();

    /** Empty output streams and fresh partition consumers: every run writes what the first one did. */
    const reset = async () => {
      for (let p = 0; p < partitions; p++) await jsm.consumers.delete(Streams.events, Consumers.enginePartition(p)).catch(() => {});
      for (const stream of [Streams.audit, Streams.commands, `KV_${Buckets.nodes}`, `KV_${Buckets.leases}`])
        await jsm.streams.delete(stream).catch(() => {});
      await provisionStreams(nc);
    };
    const measured =
      <T>(run: () => Promise<T>) =>
      async () => {
        const cpu = process.cpuUsage();
        const serverCpu = processCpuMs(server.pid);
        const started = performance.now();
        const value = await run();
        const ms = performance.now() - started;
        const used = process.cpuUsage(cpu);
        const serverAfter = processCpuMs(server.pid);
        return {
          value,
          perSec: items.length / (ms / 1000),
          ms,
          cpuMs: (used.user + used.system) / 1000,
          serverMs: serverCpu !== null && serverAfter !== null ? serverAfter - serverCpu : null,
        };
      };

    const bare = async (run: number) => {
      const name = `bench-bare-${run}`;
      await jsm.consumers.add(Streams.events, {
        durable_name: name,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: Subjects.eventAll,
        max_ack_pending: 20_000,
      });
      const bnc = await connect(name);
      const consumer = await jetstream(bnc).consumers.get(Streams.events, name);
      const r = await measured(async () => {
        let count = 0;
        const messages = await consumer.consume({ max_messages: 1_000 });
        for await (const m of messages as AsyncIterable<JsMsg>) {
          m.ack();
          if (++count === items.length) break;
        }
        await bnc.flush();
        return messages;
      })();
      r.value.stop();
      await jsm.consumers.delete(Streams.events, name);
      await bnc.close();
      return r;
    };

    const sameWrites = async (run: number, outputs: "batches" | "pipeline" = "batches") => {
      await reset();
      const snc = await connect(`bench-same-writes-${run}`);
      let events = 0;
      let done!: () => void;
      const finished = new Promise<void>((resolve) => (done = resolve));
      const r = await measured(async () => {
        const loop = await runSameWrites({
          nc: snc,
          results: folds,
          partitions,
          batchSize: options.batch,
          log,
          outputs,
          onBatch: (n) => {
            events += n;
            if (events >= items.length) done();
          },
        });
        await finished;
        return loop;
      })();
      await r.value.stop();
      await snc.close();
      return r;
    };

    const expected = new Map(items.map((i) => [i.seq, i.audit]));
    /** The engine: one instance, every partition; its audit trail checked against the history's. */
    const engineRun = async (run: number) => {
      await reset();
      const enc = await connect(`bench-engine-${run}`);
      const stats = { batches: 0, batched: 0, snapshotWrites: 0, startMs: 0, divergences: 0, commands: 0, audit: 0 };
      let applied = 0;
      let done!: () => void;
      const finished = new Promise<void>((resolve) => (done = resolve));
      const r = await measured(async () => {
        const started = performance.now();
        const engine = await runEngine({
          nc: enc,
          policy: generator.policy,
          log,
          clock: idleClock,
          instanceId: "bench",
          batchSize: options.batch,
          onBatch: (outcome, _p, size) => {
            stats.batches += 1;
            stats.batched += size;
            stats.snapshotWrites += new Set(outcome.applied.map((x) => x.node)).size;
            applied += outcome.applied.length + outcome.skipped;
            if (applied >= items.length) done();
          },
        });
        stats.startMs = performance.now() - started;
        await finished;
        return engine;
      })();
      await r.value.stop();
      await enc.close();
      const audit: AuditRecord[] = await readAuditRecords(nc);
      for (const record of audit) {
        const want = expected.get(record.seq);
        if (
          !want ||
          want.from !== record.from ||
          want.to !== record.to ||
          want.commands.map((c) => c.id).join() !== record.commands.map((c) => c.id).join()
        )
          stats.divergences += 1;
      }
      stats.divergences += Math.max(0, items.length - audit.length);
      stats.audit = audit.length;
      stats.commands = (await jsm.streams.info(Streams.commands)).state.messages;
      return { ...r, stats };
    };

    // One unmeasured run of each deciding-or-writing loop first, so that neither is measured on
    // cold code (the engine has more of it: validation, the fold, its batch path); then the
    // measured runs alternate.
    const warmUp = [await sameWrites(0), await engineRun(0)] as const;
    const before = await bare(1);
    const writesBefore = await sameWrites(1);
    const engine1 = await engineRun(1);
    const writesAfter = await sameWrites(2);
    const engine2 = await engineRun(2);
    const after = await bare(2);
    // The floor as it was before fast batches: every output with its own PubAck.
    const perMessage = [await sameWrites(3, "pipeline"), await sameWrites(4, "pipeline")];
    const divergences = warmUp[1].stats.divergences + engine1.stats.divergences + engine2.stats.divergences;
    const { batches, batched, snapshotWrites, commands } = engine2.stats;
    const audit = { length: engine2.stats.audit };
    const engineMs = (engine1.ms + engine2.ms) / 2;
    const engineStartMs = (engine1.stats.startMs + engine2.stats.startMs) / 2;

    const bareEventsPerSec = Math.round((before.perSec + after.perSec) / 2);
    const sameWritesEventsPerSec = Math.round((writesBefore.perSec + writesAfter.perSec) / 2);
    const engineEventsPerSec = Math.round((engine1.perSec + engine2.perSec) / 2);
    const perK = (ms: number | null) => (ms === null ? null : Math.round((ms / items.length) * 1000 * 10) / 10);
    const mean = (a: number | null, b: number | null) => (a === null || b === null ? null : (a + b) / 2);
    return {
      events: items.length,
      nodes: options.nodes,
      natsServerVersion: nc.info?.version ?? "unknown",
      bareEventsPerSec,
      bareRuns: [Math.round(before.perSec), Math.round(after.perSec)],
      sameWritesEventsPerSec,
      sameWritesRuns: [Math.round(writesBefore.perSec), Math.round(writesAfter.perSec)],
      sameWritesPerMessageAckEventsPerSec: Math.round((perMessage[0]!.perSec + perMessage[1]!.perSec) / 2),
      sameWritesPerMessageAckCpu: {
        client: perK((perMessage[0]!.cpuMs + perMessage[1]!.cpuMs) / 2)!,
        server: perK(mean(perMessage[0]!.serverMs, perMessage[1]!.serverMs)),
      },
      engineEventsPerSec,
      engineRuns: [Math.round(engine1.perSec), Math.round(engine2.perSec)],
      ratio: ratio(engineEventsPerSec, bareEventsPerSec),
      ratioToSameWrites: ratio(engineEventsPerSec, sameWritesEventsPerSec),
      engineMs: Math.round(engineMs),
      engineStartMs: Math.round(engineStartMs),
      foldOnlyEventsPerSec,
      divergences,
      batches,
      meanBatch: batches > 0 ? Math.round((batched / batches) * 10) / 10 : 0,
      snapshotWrites,
      commands,
      audit: audit.length,
      clientCpuMsPerKEvent: {
        bare: perK((before.cpuMs + after.cpuMs) / 2)!,
        sameWrites: perK((writesBefore.cpuMs + writesAfter.cpuMs) / 2)!,
        engine: perK((engine1.cpuMs + engine2.cpuMs) / 2)!,
      },
      serverCpuMsPerKEvent: {
        bare: perK(mean(before.serverMs, after.serverMs)),
        sameWrites: perK(mean(writesBefore.serverMs, writesAfter.serverMs)),
        engine: perK(mean(engine1.serverMs, engine2.serverMs)),
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
  const values = parseBench(
    argv,
    "throughput",
    {
      events: { type: "string" },
      nodes: { type: "string" },
      batch: { type: "string" },
      seed: { type: "string" },
      json: { type: "boolean" },
    },
    USAGE,
  );
  if (!values) return 0;
  // Both loops run in this process: under the engine process's own V8 flags (ENGINE_NODE_FLAGS),
  // so this process runs the benchmark again with them when it was started without.
  const missing = missingEngineNodeFlags();
  if (missing.length > 0 && process.argv[1]) return runWithFlags(missing, ["bench", ...argv]);
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
        ["node flags", `${process.execArgv.join(" ") || "none"} (the engine process's, for every loop)`],
        ["nats-server", r.natsServerVersion],
        ["bare consume + ack", `${r.bareEventsPerSec} events/s (runs: ${r.bareRuns.join(", ")})`],
        [
          "same writes, no deciding",
          `${r.sameWritesEventsPerSec} events/s (runs: ${r.sameWritesRuns.join(", ")}); outputs in fast batches`,
        ],
        [
          "  with a PubAck per output",
          `${r.sameWritesPerMessageAckEventsPerSec} events/s; CPU / 1000 events: client ${cpu(r.sameWritesPerMessageAckCpu.client)}, nats-server ${cpu(r.sameWritesPerMessageAckCpu.server)} (the floor before fast batches)`,
        ],
        [
          "engine",
          `${r.engineEventsPerSec} events/s (runs: ${r.engineRuns.join(", ")}; ${r.engineMs} ms, of which start ${r.engineStartMs} ms)`,
        ],
        ["ratio engine / bare", String(r.ratio)],
        ["ratio engine / same writes", `${r.ratioToSameWrites} (target ≥ 0.8)`],
        ["fold alone, in memory", `${r.foldOnlyEventsPerSec} events/s`],
        ["engine batches", `${r.batches}, ${r.meanBatch} events each on average`],
        [
          "JetStream writes",
          `${r.audit} audit records, ${r.commands} commands, ${r.snapshotWrites} snapshots (coalesced from ${r.events}), ${r.batches} acks`,
        ],
        [
          "client CPU / 1000 events",
          `bare ${cpu(r.clientCpuMsPerKEvent.bare)}, same writes ${cpu(r.clientCpuMsPerKEvent.sameWrites)}, engine ${cpu(r.clientCpuMsPerKEvent.engine)}`,
        ],
        [
          "nats-server CPU / 1000 events",
          `bare ${cpu(r.serverCpuMsPerKEvent.bare)}, same writes ${cpu(r.serverCpuMsPerKEvent.sameWrites)}, engine ${cpu(r.serverCpuMsPerKEvent.engine)}`,
        ],
        ["CPU-bound ceiling", ceilingOf(r)],
        ["audit vs history", r.divergences === 0 ? "identical" : `${r.divergences} divergences`],
      ],
      ["THROUGHPUT BENCHMARK", ""],
    )}\n`,
  );
  if (values.json) {
    printJson({
      engineEventsPerSec: r.engineEventsPerSec,
      bareEventsPerSec: r.bareEventsPerSec,
      sameWritesEventsPerSec: r.sameWritesEventsPerSec,
      ratio: r.ratio,
      ratioToSameWrites: r.ratioToSameWrites,
      natsServerVersion: r.natsServerVersion,
    });
  }
  return r.divergences === 0 ? 0 : 1;
}

/** This command again, in a child process started with `flags` (same stdio); resolves with its exit code. */
function runWithFlags(flags: string[], args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...flags, ...process.execArgv, process.argv[1]!, ...args], { stdio: "inherit" });
    child.on("error", reject);
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}
