import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { systemClock, type Clock, type NodeEvent } from "@fenceline/contracts";
import { publishEvent, type Logger } from "@fenceline/bus";
import type { NodeWatcher, NodeWatchEvent } from "@fenceline/kubernetes";
import { createConditionDetector, type ConditionDetectorOptions } from "./condition-detector.js";

export type RunConditionDetectorOptions = ConditionDetectorOptions & {
  nc: NatsConnection;
  /** The node watch (the Kubernetes adapter's `createNodeWatcher`, or a fake in tests). */
  watcher: NodeWatcher;
  log: Logger;
  clock?: Clock;
  /** How often pending durations are checked (default 200 ms). */
  tickMs?: number;
};

/**
 * Runs the condition detector: Node objects from the watcher in, node events to FL_EVENTS out,
 * in order. A publish that fails is retried (same id, so it is stored once) before anything
 * after it is sent.
 */
export async function runConditionDetector(options: RunConditionDetectorOptions) {
  const { nc, watcher, log } = options;
  const clock = options.clock ?? systemClock;
  const js = jetstream(nc);
  const detector = createConditionDetector(options);
  const outbox: NodeEvent[] = [];
  let running = true;
  let flushing: Promise<void> | null = null;
  let published = 0;

  const flush = (): Promise<void> => {
    flushing ??= (async () => {
      let failures = 0;
      while (running && outbox.length > 0) {
        const event = outbox[0]!;
        try {
          await publishEvent(js, event);
          outbox.shift();
          published++;
          failures = 0;
          log.info(
            { node: event.node, event: event.type, id: event.id },
            `${event.node}: ${event.type}${"signal" in event.data ? ` ${String(event.data.signal)}` : ""}`,
          );
        } catch (err) {
          failures++;
          log.warn({ err, node: event.node, event: event.type }, "cannot publish a node-condition event; will retry");
          await new Promise((r) => setTimeout(r, Math.min(5_000, 100 * 2 ** Math.min(failures, 6))));
        }
      }
    })().finally(() => {
      flushing = null;
      if (running && outbox.length > 0) void flush();
    });
    return flushing;
  };

  const emit = (events: NodeEvent[]) => {
    if (events.length === 0) return;
    outbox.push(...events);
    void flush();
  };

  const onEvent = (e: NodeWatchEvent) => {
    const now = clock.now();
    if (e.type === "upsert") emit(detector.observe(e.node, now));
    else if (e.type === "delete") emit(detector.remove(e.name, now));
    else emit(detector.synced(e.names, now));
  };

  await watcher.start(onEvent);
  const tickMs = options.tickMs ?? 200;
  let timer: unknown = null;
  const loop = () => {
    if (!running) return;
    emit(detector.tick(clock.now()));
    timer = clock.setTimeout(loop, tickMs);
  };
  timer = clock.setTimeout(loop, tickMs);

  return {
    detector,
    /** Events published so far. */
    published: () => published,
    /** Resolves once every event produced so far is stored. */
    async drain() {
      while (outbox.length > 0 && running) await (flushing ?? flush());
    },
    async stop() {
      running = false;
      if (timer !== null) clock.clearTimeout(timer);
      await watcher.stop();
      await flushing?.catch(() => {});
    },
  };
}
