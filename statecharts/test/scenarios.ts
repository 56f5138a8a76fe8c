import { Policy } from "@fenceline/contracts";
import type { Harness } from "./harness.js";

/**
 * The unit tests' policy, spelled out so that the timings below stay put when DEMO_POLICY is
 * tuned: unhealthy for 1s → fencing; safe time 4s (1s control plane + 0.5s peers + 1.5s
 * watchdog + 1s margin); watchdog reset 2.5s after the ack; fence timeout 10m; guard retry 1s;
 * steps Automatic then ResourceDeletion, 10s each; re-provisioning: 3 attempts, 10s timeout,
 * backoff 0.5s doubling.
 */
export const TEST_POLICY = Policy.parse({
  version: "test-1",
  heartbeat: { intervalMs: 200, timeoutMs: 1_000 },
  unhealthyDurationMs: 1_000,
  agent: { controlPlaneTimeoutMs: 1_000, peerRoundMs: 500, watchdogTimeoutMs: 1_500, marginMs: 1_000 },
  fencing: { watchdog: true, fenceAgent: false, timeoutMs: 600_000 },
  remediation: [
    { strategy: "Automatic", timeoutMs: 10_000 },
    { strategy: "ResourceDeletion", timeoutMs: 10_000 },
  ],
  rejoin: { healthyDelayMs: 0, reprovisionTimeoutMs: 10_000, reprovisionAttempts: 3, reprovisionBackoffMs: 500 },
  fleet: { retryMs: 1_000 },
});
export const FENCE_AGENT_POLICY = Policy.parse({ ...TEST_POLICY, version: "test-fa", fencing: { fenceAgent: true, timeoutMs: 600_000 } });
/** IPMI first (30 s), then the watchdog. */
export const POWER_LEVELS_POLICY = Policy.parse({
  ...TEST_POLICY,
  version: "test-levels",
  fencing: { levels: [{ methods: ["ipmi"], timeoutMs: 30_000 }, ["watchdog"]] },
});
/** Two PDUs feeding the machine: one level, both must power off; then the watchdog. */
export const TWO_PDU_POLICY = Policy.parse({
  ...TEST_POLICY,
  version: "test-pdus",
  fencing: { levels: [["pdu-a", "pdu-b"], ["watchdog"]] },
});
/** Power only: no watchdog level, so time proves nothing. */
export const POWER_ONLY_POLICY = Policy.parse({ ...TEST_POLICY, version: "test-power-only", fencing: { levels: [["ipmi"]] } });
export const SETTLING_POLICY = Policy.parse({
  ...TEST_POLICY,
  version: "test-settle",
  rejoin: { ...TEST_POLICY.rejoin, healthyDelayMs: 2_000 },
});
export const DELETION_ONLY_POLICY = Policy.parse({
  ...TEST_POLICY,
  version: "test-rd",
  remediation: [{ strategy: "ResourceDeletion", timeoutMs: 10_000 }],
});

/** n1 joins at 0 with boot id b1, host group "db". */
export function joined(h: Harness, extra: { checksums?: Record<string, string> } = {}) {
  return h.send("node.joined", { bootId: "b1", incarnation: 1, hostGroup: "db", ...extra }, 0);
}

/** Last heartbeat at 1000, missed at 2000: suspect.waiting, suspect timer due 2000. */
export function toSuspect(h: Harness, extra: { checksums?: Record<string, string> } = {}) {
  joined(h, extra);
  return h.send("heartbeat.missed", { lastSeenAt: 1_000, bootId: "b1" }, 2_000);
}

/** Slot granted at 2100: fencing, epoch 1, safe time due 5000. */
export function toFencing(h: Harness, extra: { checksums?: Record<string, string> } = {}) {
  toSuspect(h, extra);
  h.fire("suspect");
  return h.result("slot.acquire", true, 2_100);
}

/**
 * The safe time passes: the machine asks the fleet guard (slot.acquire), which answers at once
 * that a healthy majority held since 0, long before the last heartbeat: fencing confirmed.
 */
export function confirmBySafeTime(h: Harness) {
  const due = h.context.timers["safe-time"];
  h.fire("safe-time");
  return h.result("slot.acquire", true, due!, { facts: { majoritySince: 0 } });
}

/** Fencing confirmed by the safe time at 5000: remediating.resolving (Automatic). */
export function toResolving(h: Harness) {
  toFencing(h);
  return confirmBySafeTime(h);
}

/** Kubernetes 1.30 at 5100: remediating.running with OutOfServiceTaint. */
export function toRunningOutOfService(h: Harness) {
  toResolving(h);
  return h.result("cluster.version", true, 5_100, { facts: { serverVersion: "1.30" } });
}

/** Both results of the OutOfServiceTaint step at 5200 and 5300: remediating.done. */
export function toDone(h: Harness) {
  toRunningOutOfService(h);
  h.result("taint.add", true, 5_200);
  return h.result("workloads.await-gone", true, 5_300);
}

/** Back at 8000 with boot id b2: rejoining.reprovisioning (attempt 1). */
export function toReprovisioning(h: Harness) {
  toDone(h);
  return h.send("boot.changed", { previousBootId: "b1", bootId: "b2" }, 8_000);
}

/** Fence agent policy: powered off at 2200, Automatic → ResourceDeletion (1.27), done at 2400. */
export function toDoneByFenceAgent(h: Harness, extra: { checksums?: Record<string, string> } = {}) {
  toFencing(h, extra);
  h.result("fence.poweroff", true, 2_200);
  h.result("cluster.version", true, 2_300, { facts: { serverVersion: "1.27" } });
  return h.result("pods.delete", true, 2_400);
}
