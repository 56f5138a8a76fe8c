import type { JetStreamManager } from "@nats-io/jetstream";
import { NODE_EVENT_TYPES, NodeEvent, parseMessage } from "@fenceline/contracts";
import { Consumers, Streams, Subjects } from "@fenceline/streams";
import type { EventLog } from "../ports.js";

/**
 * FL_EVENTS as the engine's EventLog: a direct get of the next message on the node's subject
 * after its last applied sequence. Messages the engine dead-letters (invalid, or about another
 * node) don't count, nor do messages at or below the consumer's ack floor (acknowledged: they
 * will not come again, e.g. after FL_NODES was emptied).
 */
export function createJetStreamEventLog(jsm: JetStreamManager): EventLog {
  return {
    async firstPending(node, afterSeq, beforeSeq) {
      const subject = Subjects.event(node);
      let ackFloor: number | undefined;
      for (let from = afterSeq + 1; from < beforeSeq; ) {
        const msg = await jsm.direct.getMessage(Streams.events, { seq: from, next_by_subj: subject });
        if (!msg || msg.seq >= beforeSeq) return null;
        const parsed = parseMessage(NodeEvent, msg.data, { knownTypes: NODE_EVENT_TYPES });
        if (!parsed.ok || parsed.value.node !== node) {
          from = msg.seq + 1;
          continue;
        }
        ackFloor ??= (await jsm.consumers.info(Streams.events, Consumers.engine)).ack_floor.stream_seq;
        if (msg.seq > ackFloor) return msg.seq;
        from = ackFloor + 1;
      }
      return null;
    },
  };
}
