import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { NODE_EVENT_TYPES, NodeEvent, nodeFromToken, systemClock, type Clock, type Policy } from "@fenceline/contracts";
import { consumeValidated, publishAudit, publishCommand, publishDeadLetter, publishEvent, type Logger } from "@fenceline/bus";
import { Buckets, Consumers, Streams } from "@fenceline/streams";
import { createEngineCore, type EngineCore } from "../engine.js";
import { createDecider, type Decider, type FoldResult } from "../fold.js";
import { createTimerService, type TimerService } from "../timer-service.js";
import { createJetStreamEventLog } from "./jetstream-event-log.js";
import { createKvSnapshotStore } from "./kv-snapshot-store.js";
import type { OutputSink, SnapshotStore } from "../ports.js";

export type RunningEngine = {
  core: EngineCore;
  timers: TimerService;
  stop(): Promise<void>;
};

/**
 * Runs the engine on NATS: the durable `engine` consumer on FL_EVENTS, snapshots in FL_NODES,
 * commands to FL_COMMANDS, audit to FL_AUDIT, and the timer service. Streams must already be
 * provisioned.
 */
export async function runEngine(options: {
  nc: NatsConnection;
  policy: Policy;
  log: Logger;
  clock?: Clock;
  decider?: Decider;
  onApplied?: (result: FoldResult) => void;
  /**
   * Wraps the engine's ports: tests use it to crash the engine between publishing its outputs,
   * saving the snapshot and acking (a wrapper that throws is a crash at that point).
   */
  wrap?: { outputs?: (outputs: OutputSink) => OutputSink; snapshots?: (store: SnapshotStore) => SnapshotStore };
}): Promise<RunningEngine> {
  const { nc, policy, log } = options;
  const clock = options.clock ?? systemClock;
  const js = jetstream(nc);
  const kv = await new Kvm(nc).open(Buckets.nodes);
  const decider = options.decider ?? createDecider(policy);

  const outputs: OutputSink = {
    async publishCommands(commands) {
      await Promise.all(commands.map((c) => publishCommand(js, c)));
    },
    async publishAudit(record) {
      await publishAudit(js, record);
    },
  };
  const snapshots = createKvSnapshotStore(kv);
  const core = createEngineCore({
    decider,
    snapshots: options.wrap?.snapshots ? options.wrap.snapshots(snapshots) : snapshots,
    outputs: options.wrap?.outputs ? options.wrap.outputs(outputs) : outputs,
    events: createJetStreamEventLog(await jetstreamManager(nc)),
    ...(options.onApplied ? { onApplied: options.onApplied } : {}),
  });

  const timers = createTimerService({
    clock,
    publish: async (event) => {
      await publishEvent(js, event);
    },
    onError: (err) => log.warn({ err }, "cannot publish a timer event; will retry"),
  });

  const recovered = await core.recover();
  for (const snapshot of recovered) timers.track(snapshot.node, snapshot.context.timers);
  log.info({ nodes: recovered.length, policy: policy.version }, "engine resumed from snapshots");

  const consumer = consumeValidated({
    js,
    stream: Streams.events,
    consumer: Consumers.engine,
    schema: NodeEvent,
    knownTypes: NODE_EVENT_TYPES,
    dlqSource: "engine",
    log,
    handle: async (event, msg) => {
      const subjectNode = nodeFromToken(msg.subject.split(".")[2] ?? "");
      if (subjectNode !== event.node) {
        await publishDeadLetter(js, "engine", msg.subject, msg.data, "forbidden", `event for node "${event.node}" published on the subject of node "${subjectNode}"`, {
          log,
          msgID: `dlq:${Streams.events}:${msg.seq}`,
        });
        return;
      }
      const outcome = await core.apply(event, msg.seq);
      if (!outcome.applied && outcome.reason === "out-of-order") {
        // Settled here, so the loop's ack is a no-op. Retried soon: the earlier event may
        // still wait for its redelivery (up to the consumer's ack wait).
        const delayMs = Math.min(2_000, 100 * 2 ** Math.max(0, msg.info.deliveryCount - 1));
        log.info({ node: event.node, seq: msg.seq, waitingFor: outcome.waitingFor, delayMs }, `${event.node}: event ${msg.seq} waits for event ${outcome.waitingFor}`);
        msg.nak(delayMs);
        return;
      }
      if (!outcome.applied) {
        log.debug({ node: event.node, seq: msg.seq }, "event already applied; acking");
        return;
      }
      const { audit, snapshot } = outcome.result;
      timers.track(event.node, snapshot.context.timers);
      log.info(
        { node: event.node, seq: msg.seq, event: event.type, from: audit.from, to: audit.to, epoch: audit.epoch, commands: audit.commands.map((c) => c.kind), reason: audit.reason },
        audit.changed ? `${event.node}: ${audit.from} → ${audit.to}` : `${event.node}: ${event.type} in ${audit.to}`,
      );
    },
  });
  timers.start();

  return {
    core,
    timers,
    async stop() {
      timers.stop();
      await consumer.stop();
    },
  };
}
