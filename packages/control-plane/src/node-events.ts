import type { NatsConnection } from "@nats-io/transport-node";
import { AuditRecord } from "@fenceline/contracts";
import type { Logger } from "@fenceline/bus";
import type { NodeEventRecorder } from "@fenceline/kubernetes";
import { Subjects } from "@fenceline/streams";

/**
 * Kubernetes Events from the audit: every audit record the engine publishes (a core NATS
 * subscription to fl.audit.>, as the engine role may) goes through the recorder, one at a
 * time. Events are best effort, as Kubernetes' own are: a record published while no control
 * plane listens gives none; a failure is logged and the next record goes on. Two control
 * planes create each Event once (its name derives from the record).
 */
export function startNodeEvents(options: { nc: NatsConnection; recorder: NodeEventRecorder; log: Logger }): { stop(): Promise<void> } {
  const { nc, recorder, log } = options;
  const sub = nc.subscribe(Subjects.auditAll);
  const done = (async () => {
    for await (const msg of sub) {
      let record: AuditRecord;
      try {
        const parsed = AuditRecord.safeParse(msg.json());
        if (!parsed.success) continue;
        record = parsed.data;
      } catch {
        continue;
      }
      try {
        await recorder.recordAudit(record);
      } catch (err) {
        log.warn(
          { node: record.node, seq: record.seq, err: (err as Error).message },
          `cannot record the Kubernetes Event of ${record.node}'s audit record ${record.seq}`,
        );
      }
    }
  })();
  return {
    async stop() {
      sub.unsubscribe();
      await done;
    },
  };
}
