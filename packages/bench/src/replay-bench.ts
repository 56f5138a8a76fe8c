import { createDecider, createReplayer, type Interpreter, type Replayer } from "@fenceline/engine";
import { HistoryGenerator, type HistoryOptions } from "@fenceline/testing";

/** One interpreter's replay of the history. */
export type InterpreterRun = {
  interpreter: Interpreter;
  divergences: number;
  /** Replay time only (generation excluded). */
  elapsedMs: number;
  /** CPU time of the process during this replay (all threads, GC included). */
  cpuMs: number;
  eventsPerSec: number;
};

export type ReplayBenchResult = {
  events: number;
  nodes: number;
  transitions: number;
  /** Divergences of every run together. */
  divergences: number;
  /** One run per interpreter, in the order asked for. */
  runs: InterpreterRun[];
  generateMs: number;
  /** Simulated time the history spans. */
  spanMs: number;
  heapUsedMb: number;
  eventTypes: Record<string, number>;
};

/**
 * Generates `events` events in chunks and replays each chunk as soon as it is made, with each
 * interpreter in turn (side by side, on the same chunks): the replayer (the same
 * `createReplayer` `fenceline replay` uses) folds and compares every event with its recorded
 * audit record. Only the replays are timed, each separately. The history's audit is written
 * with xstate's own `transition()`, so the fast run is also a check that the two agree.
 */
export function benchReplay(
  options: HistoryOptions & { events: number; chunk?: number; interpreters?: readonly Interpreter[] },
): ReplayBenchResult {
  const generator = new HistoryGenerator(options);
  const runs = (options.interpreters ?? ["fast"]).map((interpreter) => ({
    interpreter,
    replayer: createReplayer({ decider: createDecider(generator.policy, undefined, { interpreter }) }) as Replayer,
    replayMs: 0,
    cpuMicros: 0,
  }));
  const chunk = options.chunk ?? 10_000;
  const eventTypes: Record<string, number> = {};
  let done = 0;
  let generateMs = 0;
  let first = 0;
  let last = 0;
  let heap = 0;
  while (done < options.events) {
    let t = performance.now();
    const items = generator.next(Math.min(chunk, options.events - done));
    generateMs += performance.now() - t;
    if (items.length === 0) break;
    if (done === 0) first = items[0]!.event.at;
    last = items.at(-1)!.event.at;
    for (const run of runs) {
      t = performance.now();
      const cpu = process.cpuUsage();
      for (const { event, seq, audit } of items) run.replayer.apply(event, seq, audit);
      run.replayMs += performance.now() - t;
      const used = process.cpuUsage(cpu);
      run.cpuMicros += used.user + used.system;
    }
    for (const { event } of items) eventTypes[event.type] = (eventTypes[event.type] ?? 0) + 1;
    done += items.length;
    heap = Math.max(heap, process.memoryUsage().heapUsed);
  }
  const reports = runs.map((run) => ({ run, report: run.replayer.report() }));
  return {
    events: done,
    nodes: reports[0]?.report.nodes ?? 0,
    transitions: reports[0]?.report.transitions ?? 0,
    divergences: reports.reduce((n, r) => n + r.report.divergenceCount, 0),
    runs: reports.map(({ run, report }) => ({
      interpreter: run.interpreter,
      divergences: report.divergenceCount,
      elapsedMs: Math.round(run.replayMs),
      cpuMs: Math.round(run.cpuMicros / 1000),
      eventsPerSec: Math.round(done / (run.replayMs / 1000)),
    })),
    generateMs: Math.round(generateMs),
    spanMs: last - first,
    heapUsedMb: Math.round(heap / 1024 / 1024),
    eventTypes,
  };
}
