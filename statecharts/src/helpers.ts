import type { NodeEvent } from "@fenceline/contracts";
import type { NodeContext } from "./context.js";

/** The boot id an event says the node runs now, if it says one. */
export function bootIdOf(event: NodeEvent): string | null {
  switch (event.type) {
    case "heartbeat.resumed":
    case "node.joined":
    case "boot.changed":
    case "config.reported":
      return event.data.bootId;
    default:
      return null;
  }
}

/** The unhealthy signal an event clears, if any. */
function signalClearedBy(event: NodeEvent): string | null {
  switch (event.type) {
    case "heartbeat.resumed":
    case "node.joined":
    case "boot.changed":
      return "heartbeat";
    case "signal.healthy":
      return event.data.signal;
    default:
      return null;
  }
}

/** Signals still active once `event` is applied. */
export function signalsAfter(context: NodeContext, event: NodeEvent): Record<string, number> {
  const cleared = signalClearedBy(event);
  // Copied key by key (not spread, then delete): same keys in the same order, and the object
  // keeps a fast shape.
  const signals: Record<string, number> = {};
  for (const name in context.signals) if (name !== cleared) signals[name] = context.signals[name]!;
  if (event.type === "heartbeat.missed") signals.heartbeat = Math.min(signals.heartbeat ?? Infinity, event.data.lastSeenAt);
  if (event.type === "signal.unhealthy") signals[event.data.signal] = Math.min(signals[event.data.signal] ?? Infinity, event.data.since);
  return signals;
}

/** When the earliest active signal started, or null when the node looks healthy. */
export function unhealthySince(signals: Record<string, number>): number | null {
  const values = Object.values(signals);
  return values.length === 0 ? null : Math.min(...values);
}

/** Services whose reported checksum differs from the desired one (none when nothing is desired). */
export function driftedServices(reported: Record<string, string> | null, desired: Record<string, string> | null): string[] {
  if (!desired) return [];
  return Object.keys(desired)
    .sort()
    .filter((service) => reported?.[service] !== desired[service]);
}

/** The timer a `timer.fired` consumes: the one it names, while still pending at the due time it carries. */
export function firedTimer(timers: Record<string, number>, event: NodeEvent): string | null {
  return event.type === "timer.fired" && timers[event.data.timer] === event.data.due ? event.data.timer : null;
}

export function withTimer(timers: Record<string, number>, name: string, due: number): Record<string, number> {
  const next: Record<string, number> = {};
  for (const key in timers) next[key] = timers[key]!;
  next[name] = due;
  return next;
}

export function withoutTimers(timers: Record<string, number>, ...names: string[]): Record<string, number> {
  const next: Record<string, number> = {};
  for (const key in timers) if (!names.includes(key)) next[key] = timers[key]!;
  return next;
}

/** Parses "1.30" / "v1.28.3" into [major, minor]. */
export function parseVersion(text: string | undefined): [number, number] | null {
  const match = /^v?(\d+)\.(\d+)/.exec(String(text ?? ""));
  return match ? [Number(match[1]), Number(match[2])] : null;
}
