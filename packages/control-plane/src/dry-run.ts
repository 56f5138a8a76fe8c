import type { ClusterApi, Provisioner } from "@fenceline/contracts";
import type { Logger } from "@fenceline/bus";

/** Used by `up` when no cluster is configured: says what it would do, does nothing. */
export function createDryRunCluster(log: Logger): ClusterApi {
  const say = (what: string, node: string) => log.warn({ node }, `dry run (no cluster configured): would ${what} on ${node}`);
  return {
    async addTaint(node, taint) {
      say(`add taint ${taint.key}:${taint.effect}`, node);
    },
    async removeTaint(node, taint) {
      say(`remove taint ${taint.key}:${taint.effect}`, node);
    },
    async deletePods(node) {
      say("force-delete every pod but DaemonSet and mirror pods", node);
      return 0;
    },
    async deleteEvictedPods() {
      return 0;
    },
    async countWorkloads() {
      return { pods: 0, volumeAttachments: 0 };
    },
    async serverVersion() {
      return "1.30";
    },
  };
}

export function createDryRunProvisioner(log: Logger): Provisioner {
  return {
    async run(step, node, hostGroup) {
      log.warn({ node, hostGroup }, `dry run (no provisioner configured): would run ${step} for ${node}`);
      return { ok: true, output: `dry run: ${step} skipped` };
    },
  };
}
