import { systemClock, type Clock } from "@fenceline/contracts";

/** Whether this node may start its workloads now, and why. */
export type GateVerdict = { open: boolean; why: string };

/**
 * The gate's rule, from the engine's state of this node (`undefined`: the engine does not know
 * the node). Open when nothing of this node's was moved, or everything was: healthy (the engine
 * never fenced it, or the whole cycle is over), rejoining (fenced and remediated: its workloads
 * run elsewhere and their objects were deleted, so a kubelet finds nothing of theirs to start),
 * or unknown. Closed while the engine may be moving its workloads (suspect, fencing,
 * remediating), until it hears this boot (down: remediated while silent; forgotten), and while it
 * waits for an operator (paused, operator): there the state alone cannot tell whether the
 * workloads were moved.
 */
export function gateVerdict(state: string | undefined): GateVerdict {
  if (state === undefined) return { open: true, why: "the engine does not know this node: nothing was moved away from it" };
  const top = state.split(".")[0]!;
  switch (top) {
    case "healthy":
    case "recovered":
      return { open: true, why: `the engine says ${state}` };
    case "rejoining":
      return { open: true, why: `the engine says ${state}: its workloads were moved and their objects deleted before it rejoins` };
    case "suspect":
    case "fencing":
    case "remediating":
      return { open: false, why: `the engine says ${state}: it may be moving this node's workloads` };
    case "down":
      return { open: false, why: `the engine says ${state}: its workloads were moved; it rejoins once the engine hears this boot` };
    case "forgotten":
      return { open: false, why: `the engine says ${state}: out of the fleet; it joins again once the engine hears this boot` };
    default:
      return { open: false, why: `the engine says ${state}: an operator decides (fenceline resume / reset)` };
  }
}

export type GateOptions = {
  /** The engine's state of this node (undefined: unknown node); rejects when the control plane cannot be asked. */
  lookup: () => Promise<string | undefined>;
  /** How often to ask again (default 2 s). */
  intervalMs?: number;
  /** Give up after this long (default: never). */
  timeoutMs?: number;
  clock?: Clock;
  /** Each time the gate stays closed (progress). */
  onWait?: (why: string) => void;
};

/**
 * Waits until the control plane says this node may start its workloads (see `gateVerdict`).
 * For a boot, before the kubelet starts: a node reset by its watchdog (or powered off by a fence
 * agent) could otherwise have its kubelet reach the API server and start the pods still bound to
 * it while the engine, which does not hear this boot (NATS unreachable), confirms fencing by the
 * safe time and moves them. Without an answer from the control plane the gate stays closed.
 * Resolves with the verdict that opened it, or the last one when `timeoutMs` ran out.
 */
export async function waitForGate(options: GateOptions): Promise<GateVerdict> {
  const clock = options.clock ?? systemClock;
  const intervalMs = options.intervalMs ?? 2_000;
  const started = clock.now();
  for (;;) {
    let verdict: GateVerdict;
    try {
      verdict = gateVerdict(await options.lookup());
    } catch (err) {
      verdict = { open: false, why: `the control plane cannot be asked: ${(err as Error).message}` };
    }
    if (verdict.open) return verdict;
    options.onWait?.(verdict.why);
    if (options.timeoutMs !== undefined && clock.now() - started + intervalMs > options.timeoutMs) return verdict;
    await new Promise<void>((resolve) => clock.setTimeout(resolve, intervalMs));
  }
}
