import { CoreV1Api, EventsV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { FENCING_TAINT, type AuditRecord } from "@fenceline/contracts";
import { statusOf, step, type Call } from "./errors.js";
import { createRetrier, type RetryOptions } from "./retry.js";

/** A Kubernetes Event about a node, as `kubectl describe node` lists it. */
export type KubeNodeEvent = { reason: string; action: string; type: "Normal" | "Warning"; note: string };

const NOTE_LIMIT = 1_000;
const has = (record: AuditRecord, text: string) => record.reason?.includes(text) === true;

/**
 * The Kubernetes Events an audit record stands for: one for each step that acts on the node
 * (fencing starts with its NoSchedule taint, fencing confirmed, a remediation step, an
 * escalation, workloads moved, re-provisioning, rejoined with its taints removed, an operator
 * needed). Records that change nothing on the node give none.
 */
export function nodeEventsOf(record: AuditRecord): KubeNodeEvent[] {
  const note = (record.reason ?? `${record.from} → ${record.to}`).slice(0, NOTE_LIMIT);
  const out: KubeNodeEvent[] = [];
  const add = (reason: string, action: string, type: KubeNodeEvent["type"]) => out.push({ reason, action, type, note });
  const fencingStarts = record.commands.some((c) => c.kind === "taint.add" && c.params.taint.key === FENCING_TAINT.key);
  if (fencingStarts) add("FencingStarted", "Fence", "Warning");
  if (has(record, "fencing confirmed")) add("FencingConfirmed", "Fence", "Normal");
  if (has(record, "remediation step")) add("RemediationStarted", "Remediate", "Warning");
  if (has(record, "did not complete: escalating to")) add("RemediationEscalated", "Remediate", "Warning");
  if (has(record, "workloads moved off the node")) add("WorkloadsMoved", "Remediate", "Normal");
  if (has(record, "re-provisioning (attempt")) add("Reprovisioning", "Rejoin", "Normal");
  if (has(record, "rejoined")) add("Rejoined", "Rejoin", "Normal");
  if (has(record, "operator required")) add("OperatorRequired", "Escalate", "Warning");
  return out;
}

export type NodeEventRecorder = {
  /** Creates the Events of one audit record (idempotent: a redelivered record creates nothing new). */
  recordAudit(record: AuditRecord): Promise<number>;
};

const EVENTS = (verb: Call["verb"], name?: string): Call => ({
  verb,
  resource: "events",
  group: "events.k8s.io",
  namespace: "default",
  ...(name ? { name } : {}),
});

const microTime = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");

/**
 * Writes Events (events.k8s.io/v1, namespace default, like the kubelet's node events) about
 * nodes, reported by `fenceline.io/engine`. Each Event's name derives from the node, the audit
 * record's sequence and its reason, so two engine replicas or a redelivery create it once
 * (409 AlreadyExists is success). RBAC: events.k8s.io events create; nodes get (the node's uid,
 * which `kubectl describe node` matches on).
 */
export function createNodeEventRecorder(options: {
  kubeConfig: KubeConfig;
  instance: string;
  log?: Logger;
  retry?: RetryOptions;
}): NodeEventRecorder {
  const events = options.kubeConfig.makeApiClient(EventsV1Api);
  const core = options.kubeConfig.makeApiClient(CoreV1Api);
  const retry = createRetrier({ ...options.retry, ...(options.log ? { log: options.log } : {}) });
  const uids = new Map<string, string>();

  const uidOf = async (node: string): Promise<string | undefined> => {
    const known = uids.get(node);
    if (known) return known;
    const uid = await retry({ verb: "get", resource: "nodes", group: "", name: node }, async () => {
      try {
        return (await core.readNode({ name: node })).metadata?.uid;
      } catch (err) {
        if (statusOf(err) === 404) return undefined;
        throw err;
      }
    });
    if (uid) uids.set(node, uid);
    return uid;
  };

  return {
    async recordAudit(record) {
      const wanted = nodeEventsOf(record);
      if (wanted.length === 0) return 0;
      const uid = await uidOf(record.node);
      if (!uid) return 0; // the node is gone: nothing to describe
      let created = 0;
      for (const event of wanted) {
        // Zero-padded: the API lists by name, and kubectl keeps that order among same-second Events.
        const name = `${record.node}.fenceline-${String(record.seq).padStart(12, "0")}-${event.reason.toLowerCase()}`;
        const body = {
          apiVersion: "events.k8s.io/v1",
          kind: "Event",
          metadata: { name, namespace: "default" },
          eventTime: microTime(record.at),
          reportingController: "fenceline.io/engine",
          reportingInstance: options.instance.slice(0, 128),
          action: event.action,
          reason: event.reason,
          note: event.note,
          type: event.type,
          regarding: { apiVersion: "v1", kind: "Node", name: record.node, uid },
        };
        const ok = await retry(EVENTS("create", name), async () => {
          try {
            await step(EVENTS("create", name), () => events.createNamespacedEvent({ namespace: "default", body: body as never }));
            return true;
          } catch (err) {
            if (statusOf(err) === 409) return false;
            throw err;
          }
        });
        if (ok) created++;
      }
      return created;
    },
  };
}
