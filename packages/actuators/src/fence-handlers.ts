import type { Clock, CommandOf, FenceTarget } from "@fenceline/contracts";
import type { HandlerContext, Handlers, Outcome } from "./actuator.js";
import type { FenceDevice } from "./fence-agents/device.js";
import { FenceAgentError, FenceErrorCode, isFenceAgentError } from "./fence-agents/errors.js";

const sleep = (clock: Clock, ms: number) => new Promise<void>((resolve) => clock.setTimeout(resolve, ms));

/**
 * `off`, then the power state read back until it says off: the positive confirmation that makes
 * a power fence proof. An agent that read it back off itself within its `off` run (fence_ipmilan
 * polls until the BMC reports off before it says so: `agentReadBackOff`) has confirmed it, and
 * the state is not read a second time; otherwise Fenceline runs `status` until it says off.
 * Returns the transcript; rejects with a FenceAgentError.
 */
export async function powerOffConfirmed(device: FenceDevice, target: FenceTarget, clock: Clock, context: HandlerContext): Promise<string> {
  const off = await device.agent.powerOff(target);
  const transcript = [off.output];
  if (off.power === "off") return transcript.join("\n");
  context.progress();
  const until = Math.min(clock.now() + device.confirmWithinMs, target.deadline ?? Infinity);
  for (;;) {
    const status = await device.agent.status(target);
    transcript.push(status.output);
    if (status.power === "off") return transcript.join("\n");
    if (clock.now() + device.pollMs > until) {
      throw new FenceAgentError(
        FenceErrorCode.NotConfirmed,
        `device ${device.name}: power-off of ${target.node} was accepted but the power state still reads "${status.power}" after ${device.confirmWithinMs} ms`,
        transcript.join("\n"),
      );
    }
    context.progress();
    await sleep(clock, device.pollMs);
  }
}

type FenceKind = "fence.poweroff" | "fence.poweron";

function failure<K extends FenceKind>(device: string, err: unknown, transcript: string[]): Outcome<K> {
  const fenceErr = isFenceAgentError(err)
    ? err
    : new FenceAgentError(FenceErrorCode.Failed, err instanceof Error ? err.message : String(err));
  if (fenceErr.output) transcript.push(fenceErr.output);
  return {
    ok: false,
    reason: `${fenceErr.code}: ${fenceErr.message}`,
    output: transcript.join("\n"),
    facts: { device, error: fenceErr.code },
  } as Outcome<K>;
}

/**
 * The devices a command is for: the one it names, or every device configured for its node (the
 * `power` method: all of them must succeed, as in one Pacemaker fencing level, e.g. the two PDUs
 * feeding one machine).
 */
function devicesOf(devices: readonly FenceDevice[], c: CommandOf<FenceKind>): FenceDevice[] | string {
  const { device, hostGroup } = c.params;
  if (device !== undefined) {
    const named = devices.find((d) => d.name === device);
    if (!named) return `no fence device named ${device} is configured (devices: ${devices.map((d) => d.name).join(", ") || "none"})`;
    if (!named.agent.covers(c.node, hostGroup))
      return `fence device ${device} has no entry for ${c.node}${hostGroup ? ` or its host group ${hostGroup}` : ""}`;
    return [named];
  }
  const all = devices.filter((d) => d.agent.covers(c.node, hostGroup));
  return all.length > 0 ? all : `no fence device is configured for ${c.node}`;
}

/**
 * The fence actuator: power fencing through the configured fence devices.
 * - `fence.poweroff`: off, then the power state read back until it says off, through the named
 *   device or every device of the node (all must succeed).
 * - `fence.poweron`: on (unfencing), through the same.
 * A power-off issued before a power-on this actuator already carried out for the node (a late
 * redelivery) is refused: it would power off a node that was let back in.
 */
export function createFenceHandlers(options: { devices: readonly FenceDevice[]; clock: Clock }): Handlers {
  const { devices, clock } = options;
  const poweredOnAt = new Map<string, number>();
  const run = async <K extends FenceKind>(
    c: CommandOf<FenceKind>,
    act: (device: FenceDevice, target: FenceTarget) => Promise<string>,
  ): Promise<Outcome<K>> => {
    const chosen = devicesOf(devices, c);
    if (typeof chosen === "string") {
      return { ok: false, reason: `invalid-config: ${chosen}`, facts: { error: FenceErrorCode.InvalidConfig } } as Outcome<K>;
    }
    const target: FenceTarget = {
      node: c.node,
      deadline: c.deadline,
      ...(c.params.hostGroup !== undefined ? { hostGroup: c.params.hostGroup } : {}),
    };
    const transcript: string[] = [];
    for (const device of chosen) {
      try {
        transcript.push(await act(device, target));
      } catch (err) {
        return failure<K>(device.name, err, transcript);
      }
    }
    return { ok: true, output: transcript.join("\n"), facts: { device: chosen.map((d) => d.name).join(",") } } as Outcome<K>;
  };
  return {
    "fence.poweroff": async (c, context) => {
      const on = poweredOnAt.get(c.node);
      if (on !== undefined && on >= c.issuedAt) {
        return {
          ok: false,
          reason: `stale: a power-on issued later (at ${on}) was already carried out for ${c.node}`,
          facts: { error: "stale" },
        };
      }
      const outcome = await run<"fence.poweroff">(c, (device, target) => powerOffConfirmed(device, target, clock, context));
      return outcome.ok ? { ...outcome, facts: { ...outcome.facts, power: "off" } } : outcome;
    },
    "fence.poweron": async (c) => {
      const outcome = await run<"fence.poweron">(c, async (device, target) => (await device.agent.powerOn(target)).output);
      if (outcome.ok) poweredOnAt.set(c.node, Math.max(c.issuedAt, poweredOnAt.get(c.node) ?? 0));
      return outcome.ok ? { ...outcome, facts: { ...outcome.facts, power: "on" } } : outcome;
    },
  };
}
