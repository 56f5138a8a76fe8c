import { ACTUATOR_OF, Command, nodeFromToken, type NodeEvent } from "@fenceline/contracts";
import { createDispatcher, createSettler, type ConsumedMessage, type DeadLetterSink, type Dispatcher, type Logger } from "@fenceline/bus";
import type { ActuatorCore } from "./actuator.js";

/** How many nodes an actuator works on at once (each node's commands one after another). */
export const ACTUATOR_CONCURRENCY = 16;
/** How soon a command whose handler asked for a retry (e.g. an unreachable agent) comes again. */
export const DEFAULT_RETRY_DELAY_MS = 500;

export type CommandLoopOptions = {
  actuator: ActuatorCore;
  /** Appends a result to FL_EVENTS (rejects when it cannot: the command is then redelivered). */
  publishEvent: (event: NodeEvent) => Promise<void>;
  deadLetters: DeadLetterSink;
  log: Logger;
  /** The stream name in dead-letter ids (`dlq:<stream>:<seq>`). */
  stream: string;
  retryDelayMs?: number;
};

/**
 * What an actuator does with one valid command, whatever carries it: a command on the subject of
 * another actuator or node is dead-lettered ("forbidden"); otherwise the actuator core runs it,
 * a retry is nak'd (redelivered after `retryDelayMs`), and a result is published to FL_EVENTS
 * before the message is acked.
 */
export function createCommandHandler(options: CommandLoopOptions): (command: Command, msg: ConsumedMessage) => Promise<void> {
  const { actuator, log } = options;
  return async (command, msg) => {
    const node = nodeFromToken(msg.subject.split(".")[3] ?? "");
    if (node !== command.node || ACTUATOR_OF[command.kind] !== actuator.name) {
      await options.deadLetters({
        subject: msg.subject,
        data: msg.data,
        reason: "forbidden",
        error: `${command.kind} for ${command.node} does not belong on ${msg.subject}`,
        msgID: `dlq:${options.stream}:${msg.seq}`,
      });
      return;
    }
    const disposition = await actuator.execute(command, { progress: () => msg.working() });
    if (disposition.kind === "retry") {
      log.info({ node: command.node, command: command.id, kind: command.kind, reason: disposition.reason }, "not done yet; will retry");
      msg.nak(options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS);
      return;
    }
    await options.publishEvent(disposition.event);
    const data = disposition.event.type === "command.result" ? disposition.event.data : null;
    log.info(
      { node: command.node, command: command.id, kind: command.kind, epoch: command.epoch, ok: data?.ok, reason: data?.reason },
      `${command.kind} ${data?.ok ? "done" : "failed"} for ${command.node}`,
    );
  };
}

/**
 * An actuator's whole consume loop over messages from any transport (the chaos lab's in-memory
 * JetStream; production runs the same settler and handler through `consumeValidated`): parse,
 * dead-letter, `createCommandHandler`, ack or nak; nodes in parallel, each node's commands in order.
 */
export function createCommandLoop<M extends ConsumedMessage>(options: CommandLoopOptions & { concurrency?: number }): Dispatcher<M> {
  return createDispatcher<M>({
    settle: createSettler<typeof Command, M>({
      stream: options.stream,
      schema: Command,
      deadLetters: options.deadLetters,
      log: options.log,
      handle: createCommandHandler(options),
    }),
    concurrency: options.concurrency ?? ACTUATOR_CONCURRENCY,
  });
}
