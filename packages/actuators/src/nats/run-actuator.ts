import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { ACTUATOR_OF, Command, COMMAND_KINDS, nodeFromToken } from "@fenceline/contracts";
import { consumeValidated, publishDeadLetter, publishEvent, type Logger } from "@fenceline/bus";
import { Consumers, Streams } from "@fenceline/streams";
import type { ActuatorCore } from "../actuator.js";

/** Runs an actuator on its durable consumer of FL_COMMANDS and publishes results to FL_EVENTS. */
export function runActuator(options: { nc: NatsConnection; actuator: ActuatorCore; log: Logger; retryDelayMs?: number; concurrency?: number }) {
  const { nc, actuator, log } = options;
  const js = jetstream(nc);
  const dlqSource = Consumers.actuator(actuator.name);
  return consumeValidated({
    js,
    stream: Streams.commands,
    consumer: Consumers.actuator(actuator.name),
    schema: Command,
    log,
    dlqSource,
    // Nodes in parallel (a long wait for one node's workloads must not hold up another's
    // fencing), each node's commands in order.
    concurrency: options.concurrency ?? 16,
    handle: async (command, msg) => {
      const node = nodeFromToken(msg.subject.split(".")[3] ?? "");
      if (node !== command.node || ACTUATOR_OF[command.kind] !== actuator.name) {
        await publishDeadLetter(js, dlqSource, msg.subject, msg.data, "forbidden", `${command.kind} for ${command.node} does not belong on ${msg.subject}`, { log, msgID: `dlq:${Streams.commands}:${msg.seq}` });
        return;
      }
      const disposition = await actuator.execute(command, { progress: () => msg.working() });
      if (disposition.kind === "retry") {
        log.info({ node: command.node, command: command.id, kind: command.kind, reason: disposition.reason }, "not done yet; will retry");
        msg.nak(options.retryDelayMs ?? 500);
        return;
      }
      await publishEvent(js, disposition.event);
      const data = disposition.event.type === "command.result" ? disposition.event.data : null;
      log.info({ node: command.node, command: command.id, kind: command.kind, epoch: command.epoch, ok: data?.ok, reason: data?.reason }, `${command.kind} ${data?.ok ? "done" : "failed"} for ${command.node}`);
    },
  });
}

export const KNOWN_COMMAND_KINDS = COMMAND_KINDS;
