import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Command } from "@fenceline/contracts";
import { consumeValidated, jetStreamDeadLetters, publishEvent, type Logger } from "@fenceline/bus";
import { Consumers, Streams } from "@fenceline/streams";
import type { ActuatorCore } from "../actuator.js";
import { ACTUATOR_CONCURRENCY, createCommandHandler } from "../command-loop.js";

/** Runs an actuator on its durable consumer of FL_COMMANDS and publishes results to FL_EVENTS. */
export function runActuator(options: {
  nc: NatsConnection;
  actuator: ActuatorCore;
  log: Logger;
  retryDelayMs?: number;
  concurrency?: number;
}) {
  const { nc, actuator, log } = options;
  const js = jetstream(nc);
  const dlqSource = Consumers.actuator(actuator.name);
  const deadLetters = jetStreamDeadLetters(js, dlqSource, log);
  return consumeValidated({
    js,
    stream: Streams.commands,
    consumer: Consumers.actuator(actuator.name),
    schema: Command,
    log,
    dlqSource,
    // Nodes in parallel (a long wait for one node's workloads must not hold up another's
    // fencing), each node's commands in order.
    concurrency: options.concurrency ?? ACTUATOR_CONCURRENCY,
    handle: createCommandHandler({
      actuator,
      publishEvent: async (event) => void (await publishEvent(js, event)),
      deadLetters,
      log,
      stream: Streams.commands,
      ...(options.retryDelayMs !== undefined ? { retryDelayMs: options.retryDelayMs } : {}),
    }),
  });
}
