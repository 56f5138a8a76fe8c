import { auditMessage, commandMessage, type FastBatchPublisher, type JetStreamPipeline, type StreamMessage } from "@fenceline/bus";
import type { Output, OutputSink } from "../ports.js";

/** An output as the JetStream sink sends it: its message, payload already in bytes. */
export type JetStreamOutput = { readonly stream: "commands" | "audit"; readonly message: StreamMessage };

/** An output's message with its final bytes (Buffer.from: nats.js's TextEncoder path is slower). */
function encodeOutput(o: Output): JetStreamOutput {
  const message = o.type === "command" ? commandMessage(o.command) : auditMessage(o.record);
  message.data = Buffer.from(message.data as string);
  return { stream: o.type === "command" ? "commands" : "audit", message };
}

/**
 * The engine's outputs on JetStream: the commands of a batch go to FL_COMMANDS and its audit
 * records to FL_AUDIT, each as one fast batch (one PubAck for the batch instead of one per
 * message; nats-server 2.14), both sent at once. A single message goes through the pipeline.
 * Within each stream the outputs keep their order (each node's in its event order). `encode`
 * gives an output's final bytes, which the engine holds instead of the records while it waits.
 */
export function createJetStreamOutputs(pipeline: JetStreamPipeline, batches: FastBatchPublisher): OutputSink<JetStreamOutput> {
  const send = async (messages: StreamMessage[]): Promise<Array<Error | null>> => {
    if (messages.length === 1) return (await pipeline.publish(messages)).map((ack) => (ack instanceof Error ? ack : null));
    return batches.publish(messages);
  };
  return {
    encode: encodeOutput,
    async publish(list) {
      let commands: StreamMessage[] = [];
      let audits: StreamMessage[] = [];
      /** Where each output went: its index among the commands (>= 0) or the audit records (< 0: -1 - index). */
      const at: number[] = [];
      for (const o of list) {
        const { stream, message } = "message" in o ? o : encodeOutput(o);
        if (stream === "commands") at.push(commands.push(message) - 1);
        else at.push(-audits.push(message));
      }
      // Sent: the messages are the connection's now (nats.js copied them out).
      const sending = Promise.all([send(commands), send(audits)]);
      commands = audits = [];
      const [commandResults, auditResults] = await sending;
      return at.map((i) => (i >= 0 ? commandResults[i] : auditResults[-1 - i]) ?? null);
    },
  };
}
