/**
 * The loops of `fenceline bench throughput`, each run in a child process of its own (fork) under
 * the engine process's Node.js flags: the engine's heap holds what a real engine process holds,
 * not the benchmark's history (hundreds of MB, whose marking the loop that allocates most would
 * otherwise pay for). Its argument is a JSON object (LoopArgs). It answers "ready" once its data is
 * built, then runs one loop per "run" message and answers with what it measured (LoopResult),
 * after a full garbage collection (--expose-gc). The first run of each child is the warm-up.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, createLogger } from "@fenceline/bus";
import { createDecider, fold, runEngine, type FoldResult, type NodeSnapshot } from "@fenceline/engine";
import { Streams, Subjects, eventPartitions } from "@fenceline/streams";
import { HistoryGenerator } from "@fenceline/testing";
import { idleClock } from "./bench-nats.js";
import { runSameWrites } from "./same-writes.js";

export type LoopArgs = {
  url: string;
  /** "floor": the bare loop and the same writes (holds the fold of the history); "engine": the engine. */
  role: "floor" | "engine";
  events: number;
  nodes: number;
  seed: number;
  batch: number;
};
export type LoopRun = {
  type: "run";
  loop: "bare" | "same-writes" | "engine";
  run: number;
  outputs?: "batches" | "pipeline";
  /** Same writes: the batches to take, per partition (an engine run's `batchSizes`). */
  batchSizes?: number[][];
};
export type EngineStats = {
  batches: number;
  batched: number;
  snapshotWrites: number;
  startMs: number;
  /** Each batch's size, per partition, in order. */
  batchSizes: number[][];
};
/** What a same-writes run wrote besides its outputs. */
export type WriteStats = { batches: number; snapshotWrites: number };
export type LoopResult =
  | { type: "result"; ms: number; cpuMs: number; engine?: EngineStats; writes?: WriteStats }
  | { type: "error"; message: string };

const args = JSON.parse(process.argv[2]!) as LoopArgs;
const log = createLogger("bench", { level: "warn" });
const generator = new HistoryGenerator({ nodes: args.nodes, seed: args.seed });
const partitions = eventPartitions();

/** The engine's own fold of every event, by stream sequence: what the same writes write. */
const folds = new Map<number, FoldResult>();
if (args.role === "floor") {
  const decider = createDecider(generator.policy);
  const states = new Map<string, NodeSnapshot | null>();
  for (const { event, seq } of generator.next(args.events)) {
    const result = fold(decider, states.get(event.node) ?? null, event, seq);
    states.set(event.node, result.snapshot);
    folds.set(seq, result);
  }
}

/**
 * Runs `loop` on a connection of its own: its time and this process's CPU. The connection is made
 * before and closed after, `finish` (stopping the loop) runs in between: neither is measured.
 */
async function measured<T>(
  name: string,
  loop: (nc: NatsConnection) => Promise<T>,
  finish: (value: T) => Promise<void> = async () => {},
): Promise<{ ms: number; cpuMs: number }> {
  const nc = await connectNats(args.url, { name });
  try {
    const cpu = process.cpuUsage();
    const started = performance.now();
    const value = await loop(nc);
    const ms = performance.now() - started;
    const used = process.cpuUsage(cpu);
    await finish(value);
    return { ms, cpuMs: (used.user + used.system) / 1000 };
  } finally {
    await nc.close();
  }
}

/** One durable pull consumer on FL_EVENTS: receive each message and ack it, nothing else. */
async function bare(run: number): Promise<LoopResult> {
  const name = `bench-bare-${run}`;
  const admin = await connectNats(args.url, { name: `${name}-admin` });
  const jsm = await jetstreamManager(admin);
  await jsm.consumers.add(Streams.events, {
    durable_name: name,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: Subjects.eventAll,
    max_ack_pending: 20_000,
  });
  try {
    const { ms, cpuMs } = await measured(
      name,
      async (nc) => {
        const consumer = await jetstream(nc).consumers.get(Streams.events, name);
        let count = 0;
        const messages = await consumer.consume({ max_messages: 1_000 });
        for await (const m of messages as AsyncIterable<JsMsg>) {
          m.ack();
          if (++count === args.events) break;
        }
        await nc.flush();
        return messages;
      },
      async (messages) => messages.stop(),
    );
    return { type: "result", ms, cpuMs };
  } finally {
    await jsm.consumers.delete(Streams.events, name).catch(() => {});
    await admin.close();
  }
}

async function sameWrites(run: number, outputs: "batches" | "pipeline", batchSizes?: number[][]): Promise<LoopResult> {
  const writes: WriteStats = { batches: 0, snapshotWrites: 0 };
  const { ms, cpuMs } = await measured(
    `bench-same-writes-${run}`,
    async (nc) => {
      let events = 0;
      let done!: () => void;
      const finished = new Promise<void>((resolve) => (done = resolve));
      const loop = await runSameWrites({
        nc,
        results: folds,
        partitions,
        batchSize: args.batch,
        log,
        outputs,
        ...(batchSizes ? { batchSizes } : {}),
        onBatch: (n, snapshots) => {
          writes.batches += 1;
          writes.snapshotWrites += snapshots;
          events += n;
          if (events >= args.events) done();
        },
      });
      await finished;
      return loop;
    },
    (loop) => loop.stop(),
  );
  return { type: "result", ms, cpuMs, writes };
}

/** The engine: one instance, every partition; done when every event was applied (or skipped). */
async function engine(run: number): Promise<LoopResult> {
  const stats: EngineStats = {
    batches: 0,
    batched: 0,
    snapshotWrites: 0,
    startMs: 0,
    batchSizes: Array.from({ length: partitions }, () => []),
  };
  let applied = 0;
  const { ms, cpuMs } = await measured(
    `bench-engine-${run}`,
    async (nc) => {
      let done!: () => void;
      const finished = new Promise<void>((resolve) => (done = resolve));
      const started = performance.now();
      const running = await runEngine({
        nc,
        policy: generator.policy,
        log,
        clock: idleClock,
        instanceId: "bench",
        batchSize: args.batch,
        onBatch: (outcome, p, size) => {
          stats.batches += 1;
          stats.batchSizes[p]!.push(size);
          stats.batched += size;
          stats.snapshotWrites += new Set(outcome.applied.map((x) => x.node)).size;
          applied += outcome.applied.length + outcome.skipped;
          if (applied >= args.events) done();
        },
      });
      stats.startMs = performance.now() - started;
      await finished;
      return running;
    },
    (running) => running.stop(),
  );
  return { type: "result", ms, cpuMs, engine: stats };
}

process.send!({ type: "ready" });
// The benchmark's process is gone (killed, interrupted): so is the reason to run.
process.on("disconnect", () => process.exit(0));
const collect = (globalThis as { gc?: () => void }).gc;
process.on("message", (message: LoopRun | "exit") => {
  if (message === "exit") process.exit(0);
  // Every run starts from a collected heap: no run pays for marking what an earlier one left.
  collect?.();
  const running =
    message.loop === "bare"
      ? bare(message.run)
      : message.loop === "same-writes"
        ? sameWrites(message.run, message.outputs ?? "batches", message.batchSizes)
        : engine(message.run);
  void running.then(
    (result) => process.send!(result),
    (err: unknown) => process.send!({ type: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
  );
});
