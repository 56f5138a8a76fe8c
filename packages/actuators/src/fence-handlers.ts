import type { Clock, Command, FenceTarget } from "@fenceline/contracts";
import type { HandlerContext, Handlers, Outcome } from "./actuator.js";
import type { FenceDevice } from "./fence-agents/device.js";
import { FenceAgentError, FenceErrorCode, isFenceAgentError } from "./fence-agents/errors.js";

const sleep = (clock: Clock, ms: number) => new Promise<void>((resolve) => clock.setTimeout(resolve, ms));

/**
 * `off`, then the power state read back until it says off: the positive confirmation that makes
 * a power fence proof. Returns the transcript; rejects with a FenceAgentError.
 */
export async function powerOffConfirmed(device: FenceDevice, target: FenceTarget, clock: Clock, context: HandlerContext): Promise<string> {
  const transcript = [(await device.agent.powerOff(target)).output];
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

function failure(device: FenceDevice, err: unknown, transcript: string[]): Outcome {
  const fenceErr = isFenceAgentError(err) ? err : new FenceAgentError(FenceErrorCode.Failed, err instanceof Error ? err.message : String(err));
  if (fenceErr.output) transcript.push(fenceErr.output);
  return {
    ok: false,
    reason: `${fenceErr.code}: ${fenceErr.message}`,
    output: transcript.join("\n"),
    facts: { device: device.name, error: fenceErr.code },
  };
}

/** The devices a command names, or every device configured for its node. */
function devicesOf(devices: readonly FenceDevice[], command: Command, hostGroup?: string): FenceDevice[] {
  return devices.filter((d) => d.agent.covers(command.node, hostGroup));
}

/**
 * The fence actuator: power fencing through the configured fence devices. `fence.poweroff` powers
 * the node off through every device configured for it (all must succeed, as in one Pacemaker
 * fencing level: two PDUs feeding one machine) and confirms each by reading the power state back.
 */
export function createFenceHandlers(options: { devices: readonly FenceDevice[]; clock: Clock }): Handlers {
  const { devices, clock } = options;
  return {
    "fence.poweroff": async (c, context) => {
      const chosen = devicesOf(devices, c);
      if (chosen.length === 0) {
        return { ok: false, reason: `invalid-config: no fence device is configured for ${c.node}`, facts: { error: FenceErrorCode.InvalidConfig } };
      }
      const target: FenceTarget = { node: c.node, deadline: c.deadline };
      const transcript: string[] = [];
      for (const device of chosen) {
        try {
          transcript.push(await powerOffConfirmed(device, target, clock, context));
        } catch (err) {
          return failure(device, err, transcript);
        }
      }
      return {
        ok: true,
        output: transcript.join("\n"),
        facts: { device: chosen.map((d) => d.name).join(","), power: "off" },
      };
    },
  };
}
