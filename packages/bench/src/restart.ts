import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { DEFAULT_POLICY, createEvent, type NodeEvent } from "@fenceline/contracts";
import { createLogger } from "@fenceline/bus";
import { createDecider, fold, readLastPerKey, runEngine } from "@fenceline/engine";
import { readNodeSnapshots } from "@fenceline/read-model";
import { Buckets, eventPartitions, provisionStreams } from "@fenceline/streams";
import { humanOutput, intOption, parseBench, printJson, table } from "@fenceline/command-line";
import { idleClock, withBenchNats } from "./bench-nats.js";

const USAGE = `usage: fenceline bench restart [--nodes N] [--runs N] [--json]

How long an engine takes to resume a fleet from its snapshots: writes N node snapshots to
FL_NODES (every node joined; one in ten suspect with a pending timer) on a nats-server started
here, then starts an engine instance N times (--runs) and times each start until it owns every
partition, has every snapshot in memory (with its timers) and consumes every partition. For
comparison it also times listing the snapshots three other ways: the read model's reader
(readNodeSnapshots: the same listing, every value parsed), batched direct gets of the bucket's
stream by sequence, and the older way (kv.keys() and a get per key).
Prints a table; with --json the table goes to stderr and stdout is one JSON document,
{ "nodes": n, "partitions": n, "resumeMs": n, "runsMs": [n], "listMs": n, "readerMs": n,
  "directBatchMs": n, "keysAndGetsMs": n, "listSpeedup": n }.
  --nodes N  snapshots (default 10000)
  --runs N   engine starts (default 3; the figure is their median)`;

const int = (value: unknown, name: string, fallback: number, min: number) => intOption(value, name, fallback, min, USAGE);

export type RestartResult = {
  nodes: number;
  partitions: number;
  resumeMs: number;
  runsMs: number[];
  listMs: number;
  readerMs: number;
  directBatchMs: number;
  keysAndGetsMs: number;
  timers: number;
  heapMb: number;
};

export async function runRestartBench(options: { nodes: number; runs: number }): Promise<RestartResult> {
  const log = createLogger("bench", { level: "warn" });
  return withBenchNats(log, async ({ connect }) => {
    const nc = await connect("bench-restart");
    await provisionStreams(nc);
    const kv = await new Kvm(nc).open(Buckets.nodes);

    // The fleet's snapshots, as the engine would have left them.
    const decider = createDecider(DEFAULT_POLICY);
    const start = 1_800_000_000_000;
    let seq = 0;
    const names = Array.from({ length: options.nodes }, (_, i) => `node-${i + 1}`);
    for (let i = 0; i < names.length; i += 1_000) {
      await Promise.all(
        names.slice(i, i + 1_000).map((node, j) => {
          const at = start + i + j;
          const joined = createEvent("node.joined", {
            id: `j:${node}`,
            node,
            at,
            source: "bench",
            data: { bootId: `${node}-b1`, incarnation: 1 },
          }) as NodeEvent;
          let snapshot = fold(decider, null, joined, ++seq).snapshot;
          if ((i + j) % 10 === 0) {
            const missed = createEvent("heartbeat.missed", {
              id: `m:${node}`,
              node,
              at: at + 5_000,
              source: "bench",
              data: { lastSeenAt: at + 2_000, bootId: `${node}-b1` },
            }) as NodeEvent;
            snapshot = fold(decider, snapshot, missed, ++seq).snapshot;
          }
          return kv.put(node, JSON.stringify(snapshot));
        }),
      );
    }

    // Listing: the ordered consumer, the read model's reader on it, direct batch gets, the old way.
    let t = performance.now();
    const listed = await readLastPerKey(nc, Buckets.nodes);
    const listMs = performance.now() - t;
    if (listed.length !== options.nodes) throw new Error(`listed ${listed.length} snapshots of ${options.nodes}`);
    t = performance.now();
    const read = await readNodeSnapshots(nc);
    const readerMs = performance.now() - t;
    if (read.length !== options.nodes) throw new Error(`readNodeSnapshots read ${read.length} snapshots of ${options.nodes}`);
    t = performance.now();
    const viaDirect = await countByDirectBatches(nc, `KV_${Buckets.nodes}`);
    const directBatchMs = performance.now() - t;
    if (viaDirect !== options.nodes) throw new Error(`direct batch gets read ${viaDirect} snapshots of ${options.nodes}`);
    t = performance.now();
    let viaKeys = 0;
    for await (const key of await kv.keys()) if (await kv.get(key)) viaKeys += 1;
    const keysAndGetsMs = performance.now() - t;
    if (viaKeys !== options.nodes) throw new Error(`kv.keys() listed ${viaKeys} snapshots of ${options.nodes}`);

    const runsMs: number[] = [];
    let timers = 0;
    let heapMb = 0;
    for (let run = 0; run < options.runs; run++) {
      const enc = await connect(`bench-restart-engine-${run}`);
      const started = performance.now();
      const engine = await runEngine({ nc: enc, policy: DEFAULT_POLICY, log, clock: idleClock, instanceId: "restart-bench" });
      runsMs.push(Math.round(performance.now() - started));
      const resumed = engine.core.snapshots().length;
      if (resumed !== options.nodes || engine.partitions().length !== eventPartitions()) {
        throw new Error(
          `run ${run + 1}: resumed ${resumed} of ${options.nodes} nodes and ${engine.partitions().length} of ${eventPartitions()} partitions`,
        );
      }
      timers = engine.timers.pending().length;
      heapMb = Math.round(process.memoryUsage().heapUsed / 1_048_576);
      await engine.stop();
      await enc.close();
    }
    const sorted = [...runsMs].sort((a, b) => a - b);
    return {
      nodes: options.nodes,
      partitions: eventPartitions(),
      resumeMs: sorted[Math.floor(sorted.length / 2)]!,
      runsMs,
      listMs: Math.round(listMs),
      readerMs: Math.round(readerMs),
      directBatchMs: Math.round(directBatchMs),
      keysAndGetsMs: Math.round(keysAndGetsMs),
      timers,
      heapMb,
    };
  });
}

/**
 * The live keys of a KV bucket's stream read with batched direct gets by sequence (nats-server
 * 2.11+, ADR-31), 1,000 messages per request. Right only for a bucket that keeps one value per
 * key (FL_NODES does): the stream then holds the last value of every key. Direct gets of the
 * last value per subject (`multi_last`) would be the exact read, but the server answers "too many
 * results" beyond 1,024 subjects.
 */
async function countByDirectBatches(nc: NatsConnection, stream: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const live = new Set<string>();
  for (let seq = 1, pending = 1; pending > 0; ) {
    let got = 0;
    for await (const m of await jsm.direct.getBatch(stream, { seq, batch: 1_000 })) {
      got += 1;
      seq = m.seq + 1;
      pending = Number(m.header.get("Nats-Num-Pending") || 0);
      const op = m.header.get("KV-Operation");
      if (op === "DEL" || op === "PURGE") live.delete(m.subject);
      else live.add(m.subject);
    }
    if (got === 0) break;
  }
  return live.size;
}

/** How many times faster the ordered-consumer listing was than kv.keys() and a get per key. */
const listSpeedup = (r: { listMs: number; keysAndGetsMs: number }) => Math.round((r.keysAndGetsMs / Math.max(1, r.listMs)) * 10) / 10;

/** `fenceline bench restart`. */
export async function benchRestart(argv: string[]): Promise<number> {
  const values = parseBench(argv, "restart", { nodes: { type: "string" }, runs: { type: "string" }, json: { type: "boolean" } }, USAGE);
  if (!values) return 0;
  const r = await runRestartBench({ nodes: int(values.nodes, "nodes", 10_000, 1), runs: int(values.runs, "runs", 3, 1) });
  humanOutput(values.json).write(
    `${table(
      [
        ["nodes (snapshots)", String(r.nodes)],
        ["partitions", String(r.partitions)],
        [
          "engine start to resumed",
          `${r.resumeMs} ms median (runs: ${r.runsMs.join(", ")} ms): leases claimed, snapshots loaded, consumers checked and consuming`,
        ],
        ["timers re-armed", String(r.timers)],
        ["listing the snapshots", `${r.listMs} ms (one ordered consumer, last value per key)`],
        ["  readNodeSnapshots", `${r.readerMs} ms (the same, every value parsed: what fenceline nodes and ui read)`],
        ["  direct batch gets", `${r.directBatchMs} ms (the bucket's stream by sequence, 1,000 per request)`],
        ["  the old way", `${r.keysAndGetsMs} ms (kv.keys() and a get per key)`],
        ["ratio old way / now", `${listSpeedup(r)} (listing, measured side by side)`],
        ["heap after resuming", `${r.heapMb} MB (whole process)`],
      ],
      ["RESTART BENCHMARK", ""],
    )}\n`,
  );
  if (values.json) {
    const { nodes, partitions, resumeMs, runsMs, listMs, readerMs, directBatchMs, keysAndGetsMs } = r;
    printJson({ nodes, partitions, resumeMs, runsMs, listMs, readerMs, directBatchMs, keysAndGetsMs, listSpeedup: listSpeedup(r) });
  }
  return 0;
}
