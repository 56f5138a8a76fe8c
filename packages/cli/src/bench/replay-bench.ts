import { createDecider, createReplayer } from "@fenceline/engine";
import { HistoryGenerator, type HistoryOptions } from "./history.js";

export type ReplayBenchResult = {
  events: number;
  nodes: number;
  transitions: number;
  divergences: number;
  /** Replay time only (generation excluded). */
  elapsedMs: number;
  /** CPU time of the process during the replay (all threads, GC included). */
  cpuMs: number;
  eventsPerSec: number;
  generateMs: number;
  /** Simulated time the history spans. */
  spanMs: number;
  heapUsedMb: number;
  eventTypes: Record<string, number>;
};

/**
 * Generates `events` events in chunks and replays each chunk as soon as it is made: the
 * replayer (the same `createReplayer` `fenceline replay` uses) folds and compares every event
 * with its recorded audit record. Only the replay is timed.
 */
export function benchReplay(options: HistoryOptions & { events: number; chunk?: number }): ReplayBenchResult {
  const generator = new HistoryGenerator(options);
  const replayer = createReplayer({ decider: createDecider(generator.policy) });
  const chunk = options.chunk ?? 10_000;
  const eventTypes: Record<string, number> = {};
  let done = 0;
  let replayMs = 0;
  let cpuMicros = 0;
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
    t = performance.now();
    const cpu = process.cpuUsage();
    for (const { event, seq, audit } of items) replayer.apply(event, seq, audit);
    replayMs += performance.now() - t;
    const used = process.cpuUsage(cpu);
    cpuMicros += used.user + used.system;
    for (const { event } of items) eventTypes[event.type] = (eventTypes[event.type] ?? 0) + 1;
    done += items.length;
    heap = Math.max(heap, process.memoryUsage().heapUsed);
  }
  const report = replayer.report();
  return {
    events: done,
    nodes: report.nodes,
    transitions: report.transitions,
    divergences: report.divergenceCount,
    elapsedMs: Math.round(replayMs),
    cpuMs: Math.round(cpuMicros / 1000),
    eventsPerSec: Math.round(done / (replayMs / 1000)),
    generateMs: Math.round(generateMs),
    spanMs: last - first,
    heapUsedMb: Math.round(heap / 1024 / 1024),
    eventTypes,
  };
}
