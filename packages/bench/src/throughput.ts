import { fork } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { availableParallelism } from "node:os";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { AuditRecord } from "@fenceline/contracts";
import { createLogger, publishEvent } from "@fenceline/bus";
import { createDecider, fold, missingEngineNodeFlags, type NodeSnapshot } from "@fenceline/engine";
import { readAuditRecords } from "@fenceline/read-model";
import { Buckets, Consumers, ENGINE_MAX_ACK_PENDING, Streams, eventPartitions, provisionStreams } from "@fenceline/streams";
import { humanOutput, intOption, parseBench, printJson, table } from "@fenceline/command-line";
import { withBenchNats } from "./bench-nats.js";
import { HistoryGenerator, type HistoryItem } from "@fenceline/testing";
import { processCpuMs, ratio } from "./measure.js";
import { IMAGE_NODE_VERSION } from "@fenceline/toolchain";
import { currentLoopNode, describeLoopNode, resolveLoopNode, type LoopNode } from "./loop-node.js";
import type { EngineStats, LoopArgs, LoopResult, LoopRun, WriteStats } from "./throughput-loop.js";

const USAGE = `usage: fenceline bench throughput [--events N] [--nodes N] [--batch N] [--pairs N] [--seed N] [--node image|current|PATH] [--json]

Events per second through the full engine against two floors, side by side on the same
nats-server (started here, temporary store) and the same pre-published events: a synthetic but
valid history (see \`fenceline bench replay\`) in FL_EVENTS.
  bare         one durable pull consumer on FL_EVENTS: receive each message and ack it, nothing else
  same writes  exactly the engine's writes without deciding: the ${eventPartitions()} partition consumers in
               the batches of the engine run before it (the same sizes, in the same order), the
               same commands and audit records through the same pipeline, the same coalesced
               snapshot compare-and-sets, one ack per batch (outputs looked up from the engine's
               own fold of the history, computed beforehand; no validation, no fold)
  engine       the partitioned engine (one instance, all ${eventPartitions()} partitions): consume in batches,
               validate, fold, publish commands and audit records, save each node's last snapshot,
               ack the batch
The engine and the same writes first run once each unmeasured (warm-up: neither is measured on
cold code), then the bare loop, then --pairs pairs of a same-writes run and an engine run, side by
side (the order alternates: same writes first in the odd pairs, the engine first in the even
ones), then the bare loop again; each figure is the mean of its runs, and each pair's own ratio is
shown too (how much a single pair can tell). Last, the same writes run twice more with one PubAck
per output instead of fast batches, to show what the batches save. Every
run starts from empty output streams (so nothing is a duplicate). The engine's time includes its
start (leases, consumers). Its logs are off (warn level), its timers idle.
The engine runs in a child process of its own, as it does in production, and the two floors in
another (which holds the fold of the history they write); both on the Node.js the engine image
runs (deploy/Dockerfile; fetched on first use, see --node) with the engine process's Node.js flags
(ENGINE_NODE_FLAGS), each run after a full garbage collection (so that no run pays for marking
what the one before it left). This process publishes the history and checks the engine's
audit trail against it.
Prints a table; with --json the table goes to stderr and stdout is one JSON document,
{ "engineEventsPerSec": n, "bareEventsPerSec": n, "sameWritesEventsPerSec": n, "ratio": n,
  "ratioToSameWrites": n, "natsServerVersion": s }.
  --events N  events (default 50000)
  --nodes N   fleet size (default 1000)
  --batch N   most events per engine batch and partition (default 256; a partition's consumer
              hands out ${ENGINE_MAX_ACK_PENDING} events before an ack, so more takes no larger batches)
  --pairs N   same-writes and engine runs measured side by side (default 3)
  --seed N    seed of the history (default 1)
  --node X    the Node.js both loops run on: image (default: the engine image's, Node.js
              ${IMAGE_NODE_VERSION}, fetched on first use into the tool cache), current (the one
              running this command) or the path of a node binary`;

const int = (value: unknown, name: string, fallback: number, min: number) => intOption(value, name, fallback, min, USAGE);

export type ThroughputResult = {
  events: number;
  nodes: number;
  natsServerVersion: string;
  /** The Node.js flags the loops' processes ran with. */
  nodeFlags: string[];
  /** The Node.js the loops' processes ran on. */
  node: LoopNode;
  bareEventsPerSec: number;
  bareRuns: number[];
  sameWritesEventsPerSec: number;
  sameWritesRuns: number[];
  /** The same writes with one PubAck per output (the pipeline), as the engine wrote before fast batches. */
  sameWritesPerMessageAckEventsPerSec: number;
  sameWritesPerMessageAckCpu: { client: number; server: number | null };
  engineEventsPerSec: number;
  engineRuns: number[];
  /** Each pair's engine / same writes, in run order. */
  pairRatios: number[];
  ratio: number;
  ratioToSameWrites: number;
  engineMs: number;
  engineStartMs: number;
  foldOnlyEventsPerSec: number;
  divergences: number;
  batches: number;
  meanBatch: number;
  snapshotWrites: number;
  /** What each measured same-writes run wrote besides outputs (its batches are the engine run's before it). */
  sameWritesBatches: WriteStats[];
  commands: number;
  audit: number;
  clientCpuMsPerKEvent: { bare: number; sameWrites: number; engine: number };
  serverCpuMsPerKEvent: { bare: number | null; sameWrites: number | null; engine: number | null };
};

export async function runThroughputBench(options: {
  events: number;
  nodes: number;
  batch: number;
  pairs: number;
  seed: number;
  /** The Node.js the loops run on (default: the one running this). */
  node?: LoopNode;
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

    // The decide step alone, in memory, for reference.
    const decider = createDecider(generator.policy);
    const states = new Map<string, NodeSnapshot | null>();
    const t = performance.now();
    for (const { event, seq } of items) states.set(event.node, fold(decider, states.get(event.node) ?? null, event, seq).snapshot);
    const foldOnlyEventsPerSec = Math.round(items.length / ((performance.now() - t) / 1000));
    states.clear();
    const expected = new Map(items.map((i) => [i.seq, i.audit]));
    items.length = 0;
    const partitions = eventPartitions();

    /** Empty output streams and fresh partition consumers: every run writes what the first one did. */
    const reset = async () => {
      for (let p = 0; p < partitions; p++) await jsm.consumers.delete(Streams.events, Consumers.enginePartition(p)).catch(() => {});
      for (const stream of [Streams.audit, Streams.commands, `KV_${Buckets.nodes}`, `KV_${Buckets.leases}`])
        await jsm.streams.delete(stream).catch(() => {});
      await provisionStreams(nc);
    };

    const { node: _node, ...loopOptions } = options;
    const node = options.node ?? currentLoopNode();
    const floor = await startLoopProcess({ ...loopOptions, url: server.url, role: "floor" }, node);
    const engineProcess = await startLoopProcess({ ...loopOptions, url: server.url, role: "engine" }, node);
    try {
      /** One run of a loop in its process, with nats-server's CPU over the same time. */
      const measured = async (child: LoopProcess, run: LoopRun) => {
        const serverCpu = processCpuMs(server.pid);
        const result = await child.run(run);
        const serverAfter = processCpuMs(server.pid);
        return {
          ...result,
          perSec: expected.size / (result.ms / 1000),
          serverMs: serverCpu !== null && serverAfter !== null ? serverAfter - serverCpu : null,
        };
      };
      const bare = (run: number) => measured(floor, { type: "run", loop: "bare", run });
      /** The batches of the latest engine run, which the same writes take exactly. */
      let engineBatches: number[][] | undefined;
      const sameWrites = async (run: number, outputs: "batches" | "pipeline" = "batches") => {
        await reset();
        return measured(floor, { type: "run", loop: "same-writes", run, outputs, ...(engineBatches ? { batchSizes: engineBatches } : {}) });
      };
      /** The engine, its audit trail checked against the history's. */
      const engineRun = async (run: number) => {
        await reset();
        const r = await measured(engineProcess, { type: "run", loop: "engine", run });
        // A run that replayed part of a partition (a failed batch) took some events twice: its
        // batches are not a plan of the history's.
        const taken = r.engine!.batchSizes.flat().reduce((a, b) => a + b, 0);
        engineBatches = taken === expected.size ? r.engine!.batchSizes : undefined;
        const audit: AuditRecord[] = await readAuditRecords(nc);
        let divergences = 0;
        for (const record of audit) {
          const want = expected.get(record.seq);
          if (
            !want ||
            want.from !== record.from ||
            want.to !== record.to ||
            want.commands.map((c) => c.id).join() !== record.commands.map((c) => c.id).join()
          )
            divergences += 1;
        }
        divergences += Math.max(0, expected.size - audit.length);
        const commands = (await jsm.streams.info(Streams.commands)).state.messages;
        return { ...r, stats: { ...r.engine!, divergences, audit: audit.length, commands } };
      };

      // One unmeasured run of each deciding-or-writing loop first, so that neither is measured on
      // cold code (the engine has more of it: validation, the fold, its batch path); then the
      // measured pairs, in alternating order so that a drift of the machine weighs on both loops.
      // The engine first: each same-writes run takes the batches of the engine run before it.
      const warmUp = await engineRun(0);
      await sameWrites(0);
      const before = await bare(1);
      const writes: Array<Awaited<ReturnType<typeof sameWrites>>> = [];
      const engines: Array<Awaited<ReturnType<typeof engineRun>>> = [];
      for (let pair = 1; pair <= options.pairs; pair++) {
        if (pair % 2 === 1) {
          writes.push(await sameWrites(pair));
          engines.push(await engineRun(pair));
        } else {
          engines.push(await engineRun(pair));
          writes.push(await sameWrites(pair));
        }
      }
      const after = await bare(2);
      // The floor as it was before fast batches: every output with its own PubAck.
      const perMessage = [await sameWrites(options.pairs + 1, "pipeline"), await sameWrites(options.pairs + 2, "pipeline")];
      const divergences = warmUp.stats.divergences + engines.reduce((n, e) => n + e.stats.divergences, 0);
      const last = engines.at(-1)!.stats;
      const { batches, batched, snapshotWrites, commands } = last;
      const avg = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
      const meanOf = (values: Array<number | null>) => (values.some((v) => v === null) ? null : avg(values as number[]));
      const events = expected.size;
      const perK = (ms: number | null) => (ms === null ? null : Math.round((ms / events) * 1000 * 10) / 10);

      const bareEventsPerSec = Math.round((before.perSec + after.perSec) / 2);
      const sameWritesEventsPerSec = Math.round(avg(writes.map((w) => w.perSec)));
      const engineEventsPerSec = Math.round(avg(engines.map((e) => e.perSec)));
      return {
        events,
        nodes: options.nodes,
        natsServerVersion: nc.info?.version ?? "unknown",
        nodeFlags: engineProcess.flags,
        node,
        bareEventsPerSec,
        bareRuns: [Math.round(before.perSec), Math.round(after.perSec)],
        sameWritesEventsPerSec,
        sameWritesRuns: writes.map((w) => Math.round(w.perSec)),
        sameWritesPerMessageAckEventsPerSec: Math.round(avg(perMessage.map((r) => r.perSec))),
        sameWritesPerMessageAckCpu: {
          client: perK(avg(perMessage.map((r) => r.cpuMs)))!,
          server: perK(meanOf(perMessage.map((r) => r.serverMs))),
        },
        engineEventsPerSec,
        engineRuns: engines.map((e) => Math.round(e.perSec)),
        pairRatios: engines.map((e, i) => ratio(e.perSec, writes[i]!.perSec)),
        ratio: ratio(engineEventsPerSec, bareEventsPerSec),
        ratioToSameWrites: ratio(engineEventsPerSec, sameWritesEventsPerSec),
        engineMs: Math.round(avg(engines.map((e) => e.ms))),
        engineStartMs: Math.round(avg(engines.map((e) => e.stats.startMs))),
        foldOnlyEventsPerSec,
        divergences,
        batches,
        meanBatch: batches > 0 ? Math.round((batched / batches) * 10) / 10 : 0,
        snapshotWrites,
        sameWritesBatches: writes.map((w) => w.writes!),
        commands,
        audit: last.audit,
        clientCpuMsPerKEvent: {
          bare: perK(avg([before.cpuMs, after.cpuMs]))!,
          sameWrites: perK(avg(writes.map((w) => w.cpuMs)))!,
          engine: perK(avg(engines.map((e) => e.cpuMs)))!,
        },
        serverCpuMsPerKEvent: {
          bare: perK(meanOf([before.serverMs, after.serverMs])),
          sameWrites: perK(meanOf(writes.map((w) => w.serverMs))),
          engine: perK(meanOf(engines.map((e) => e.serverMs))),
        },
      };
    } finally {
      floor.stop();
      engineProcess.stop();
    }
  });
}

/**
 * The floors' process holds the fold of the whole history (about 90 MB for 50,000 events), which
 * no real process would: an old generation this large from the start, so that it does not spend
 * its runs marking that data (which could only make the floors slower than they are).
 */
const FLOOR_OLD_SPACE_MB = 1024;

const LOOP_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), "throughput-loop.js");

type LoopProcess = {
  /** The Node.js flags it runs with. */
  flags: string[];
  run(run: LoopRun): Promise<{ ms: number; cpuMs: number; engine?: EngineStats; writes?: WriteStats }>;
  stop(): void;
};

/**
 * A child process running the loops of one role (throughput-loop.ts) on `node`, under the engine process's
 * Node.js flags (ENGINE_NODE_FLAGS, where this process was not given its own); resolves once it
 * has built its data. One run at a time.
 */
async function startLoopProcess(args: LoopArgs, node: LoopNode): Promise<LoopProcess> {
  const flags = [...process.execArgv, ...missingEngineNodeFlags()];
  const child = fork(LOOP_SCRIPT, [JSON.stringify(args)], {
    execPath: node.path,
    execArgv:
      args.role === "floor"
        ? [
            ...flags.filter((f) => !f.startsWith("--initial-old-space-size")),
            "--expose-gc",
            `--initial-old-space-size=${FLOOR_OLD_SPACE_MB}`,
          ]
        : [...flags, "--expose-gc"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let pending: { resolve: (m: LoopResult) => void; reject: (err: Error) => void } | null = null;
  let exited: Error | null = null;
  const ready = new Promise<void>((resolve, reject) => {
    child.once("message", () => resolve());
    child.once("exit", (code, signal) => {
      exited = new Error(`the ${args.role} loop's process exited (${signal ?? `code ${code}`})`);
      reject(exited);
      pending?.reject(exited);
    });
  });
  await ready;
  child.on("message", (m: LoopResult) => pending?.resolve(m));
  return {
    flags,
    async run(run) {
      if (exited) throw exited;
      const m = await new Promise<LoopResult>((resolve, reject) => {
        pending = { resolve, reject };
        child.send(run);
      });
      pending = null;
      if (m.type === "error") throw new Error(`the ${args.role} loop's process, ${run.loop} run ${run.run}: ${m.message}`);
      return m;
    },
    stop() {
      if (exited) return;
      child.send("exit");
    },
  };
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
      pairs: { type: "string" },
      seed: { type: "string" },
      node: { type: "string" },
      json: { type: "boolean" },
    },
    USAGE,
  );
  if (!values) return 0;
  const node = await resolveLoopNode(values.node as string | undefined, USAGE);
  const r = await runThroughputBench({
    events: int(values.events, "events", 50_000, 1),
    nodes: int(values.nodes, "nodes", 1_000, 1),
    batch: int(values.batch, "batch", 256, 1),
    pairs: int(values.pairs, "pairs", 3, 1),
    seed: int(values.seed, "seed", 1, 0),
    node,
  });
  const cpu = (ms: number | null) => (ms === null ? "n/a" : `${ms} ms`);
  humanOutput(values.json).write(
    `${table(
      [
        ["events, nodes", `${r.events} over ${r.nodes} nodes (pre-published in FL_EVENTS)`],
        ["node.js", describeLoopNode(r.node)],
        ["node flags", `${r.nodeFlags.join(" ") || "none"} (the engine process's; each loop runs in a process of its own)`],
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
        ["ratio engine / same writes", `${r.ratioToSameWrites} (target ≥ 0.8); pair by pair: ${r.pairRatios.join(", ")}`],
        ["fold alone, in memory", `${r.foldOnlyEventsPerSec} events/s (in this process, Node.js ${process.version})`],
        ["engine batches", `${r.batches}, ${r.meanBatch} events each on average`],
        [
          "same writes' batches",
          `${r.sameWritesBatches.map((b) => `${b.batches} batches, ${b.snapshotWrites} snapshots`).join("; ")} (each run takes the batches of the engine run before it)`,
        ],
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
