import type { AuditRecord } from "@fenceline/contracts";

/** How long after a fault one node's lifecycle took each step (ms), from its audit records. */
export type FaultTimings = {
  detectedAfterMs: number | null;
  fencedAfterMs: number | null;
  rejoinedAfterMs: number | null;
  fencedBy: FencedBy | null;
};

/** How the node's fencing was confirmed: a new boot id, its watchdog (stop acknowledged + timeout), the safe time, or a power-off read back. */
export type FencedBy = "reboot" | "watchdog" | "safe-time" | "power";

/** The kind of confirmation an audit reason "fencing confirmed: …" names. */
function fencedByOf(reason: string | undefined): FencedBy | null {
  const by = /fencing confirmed: (.*)$/.exec(reason ?? "")?.[1];
  if (by === undefined) return null;
  if (by.startsWith("reboot")) return "reboot";
  if (by.startsWith("watchdog")) return "watchdog";
  if (by.startsWith("safe time")) return "safe-time";
  if (by.startsWith("power") || by.startsWith("fence agent")) return "power";
  return null;
}

/** Records this much older than the fault still count (the detector may date an event slightly earlier). */
const SLACK_MS = 50;

/**
 * The node's steps after a fault injected at `t0`, from its audit records in sequence order:
 * detected (heartbeat missed or suspect), fenced (left `fencing`), and rejoined — the first
 * return to `healthy` *after* the node left it following the fault (a return before that, in the
 * slack window or from an earlier episode, is not this fault's rejoin).
 */
export function faultTimings(records: AuditRecord[], t0: number): FaultTimings {
  const after = records.filter((r) => r.at >= t0 - SLACK_MS);
  const since = (r: AuditRecord | undefined) => (r ? Math.max(0, r.at - t0) : null);
  const detected = after.find((r) => r.event.type === "heartbeat.missed" || (r.changed && r.to.startsWith("suspect")));
  const fenced = after.find((r) => r.changed && r.from === "fencing");
  const left = after.findIndex((r) => r.changed && r.to !== "healthy" && r.at >= t0);
  const rejoined = left < 0 ? undefined : after.slice(left + 1).find((r) => r.changed && r.to === "healthy");
  const confirmed = after.find((r) => fencedByOf(r.reason) !== null);
  return {
    detectedAfterMs: since(detected),
    fencedAfterMs: since(fenced),
    rejoinedAfterMs: since(rejoined),
    fencedBy: fencedByOf(confirmed?.reason),
  };
}
