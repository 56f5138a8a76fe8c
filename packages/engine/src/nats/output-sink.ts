import { auditMessage, commandMessage, type FastBatchPublisher, type JetStreamPipeline, type StreamMessage } from "@fenceline/bus";
import type { Output, OutputSink } from "../ports.js";

/**
 * The engine's outputs on JetStream: the commands of a batch go to FL_COMMANDS and its audit
 * records to FL_AUDIT, each as one fast batch (one PubAck for the batch instead of one per
 * message; nats-server 2.14), both sent at once. A single message goes through the pipeline.
 * Within each stream the outputs keep their order (each node's in its event order).
 */
export function createJetStreamOutputs(pipeline: JetStreamPipeline, batches: FastBatchPublisher): OutputSink {
  const send = async (messages: StreamMessage[]): Promise<Array<Error | null>> => {
    if (messages.length === 1) return (await pipeline.publish(messages)).map((ack) => (ack instanceof Error ? ack : null));
    return batches.publish(messages);
  };
  return {
    async publish(list: readonly Output[]) {
      const commands: StreamMessage[] = [];
      const audits: StreamMessage[] = [];
      /** Where each output went: its stream's list and its index there. */
      const at: Array<[StreamMessage[], number]> = [];
      for (const o of list) {
        const target = o.type === "command" ? commands : audits;
        at.push([target, target.length]);
        target.push(o.type === "command" ? commandMessage(o.command) : auditMessage(o.record));
      }
      const [commandResults, auditResults] = await Promise.all([send(commands), send(audits)]);
      return at.map(([target, index]) => (target === commands ? commandResults : auditResults)[index] ?? null);
    },
  };
}
