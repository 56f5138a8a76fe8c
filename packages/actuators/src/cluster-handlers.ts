import type { Clock, ClusterApi } from "@fenceline/contracts";
import type { Handlers } from "./actuator.js";

const sleep = (clock: Clock, ms: number) => new Promise<void>((resolve) => clock.setTimeout(resolve, ms));
/** "1 pod", "2 pods", "0 pods". */
const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? "" : "s"}`;

/** Taints, pod deletion, and the out-of-service wait for a node's workloads to be gone. */
export function createClusterHandlers(cluster: ClusterApi, clock: Clock, options: { pollMs?: number } = {}): Handlers {
  const pollMs = options.pollMs ?? 250;
  return {
    "taint.add": async (c) => {
      await cluster.addTaint(c.node, c.params.taint);
      return { ok: true, output: `taint ${c.params.taint.key}:${c.params.taint.effect} added` };
    },
    "taint.remove": async (c) => {
      await cluster.removeTaint(c.node, c.params.taint);
      return { ok: true, output: `taint ${c.params.taint.key}:${c.params.taint.effect} removed` };
    },
    "pods.delete": async (c) => {
      const n = await cluster.deletePods(c.node);
      return { ok: true, output: `${count(n, "pod")} force-deleted`, facts: { deleted: n } };
    },
    "workloads.await-gone": async (c, context) => {
      const until = clock.now() + c.params.timeoutMs;
      let deleted = 0;
      for (;;) {
        // What the taint evicted, Pod GC would force-delete only once the node is NotReady (up to
        // a minute later): fencing is confirmed, so it goes now.
        deleted += await cluster.deleteEvictedPods(c.node);
        const left = await cluster.countWorkloads(c.node);
        const forced = deleted > 0 ? ` (${count(deleted, "evicted pod")} force-deleted)` : "";
        if (left.pods === 0 && left.volumeAttachments === 0) {
          return {
            ok: true,
            output: `no pods that must move and none of their VolumeAttachments left${forced}`,
            facts: { gone: true, deleted },
          };
        }
        if (clock.now() >= until) {
          return {
            ok: false,
            reason: `${count(left.pods, "pod")} that must move and ${count(left.volumeAttachments, "VolumeAttachment")} still there after ${c.params.timeoutMs} ms${forced}`,
          };
        }
        context.progress();
        await sleep(clock, pollMs);
      }
    },
    "cluster.version": async () => {
      const version = await cluster.serverVersion();
      return { ok: true, facts: { serverVersion: version } };
    },
  };
}
