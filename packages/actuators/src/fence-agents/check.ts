import type { FenceDevice } from "./device.js";
import { isFenceAgentError, type FenceErrorCode } from "./errors.js";

export type FenceCheckAnswer = {
  node: string;
  device: string;
  durationMs: number;
} & ({ ok: true; power: "on" | "off" } | { ok: false; error: FenceErrorCode | "internal"; message: string });

/**
 * A preflight, like Fence Agents Remediation's template validation: runs `status` through every
 * device configured for every node and reports each answer. A node that reads "off" is reported
 * as it is: it says the BMC answers, not that the node is healthy.
 */
export async function checkFenceDevices(
  devices: readonly FenceDevice[],
  nodes: readonly { node: string; hostGroup?: string }[],
  options: { timeoutMs?: number; concurrency?: number } = {},
): Promise<FenceCheckAnswer[]> {
  const jobs = nodes.flatMap(({ node, hostGroup }) =>
    devices.filter((d) => d.agent.covers(node, hostGroup)).map((device) => ({ node, hostGroup, device })),
  );
  const answers: FenceCheckAnswer[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < jobs.length; i = next++) {
      const { node, hostGroup, device } = jobs[i]!;
      const started = Date.now();
      try {
        const status = await device.agent.status({
          node,
          ...(hostGroup ? { hostGroup } : {}),
          deadline: started + (options.timeoutMs ?? 60_000),
        });
        answers[i] = { node, device: device.name, durationMs: Date.now() - started, ok: true, power: status.power };
      } catch (err) {
        answers[i] = {
          node,
          device: device.name,
          durationMs: Date.now() - started,
          ok: false,
          error: isFenceAgentError(err) ? err.code : "internal",
          message: err instanceof Error ? err.message : String(err),
        };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency ?? 4, jobs.length)) }, worker));
  return answers;
}
