import type { Clock, FenceAgent } from "@fenceline/contracts";
import type { Handlers } from "./actuator.js";

/** Power fencing: off, then read the power state back until it says off (positive confirmation). */
export function createFenceHandlers(agent: FenceAgent, clock: Clock, options: { pollMs?: number; confirmWithinMs?: number } = {}): Handlers {
  const pollMs = options.pollMs ?? 500;
  const confirmWithinMs = options.confirmWithinMs ?? 30_000;
  return {
    "fence.poweroff": async (c, context) => {
      await agent.powerOff(c.node);
      const until = clock.now() + confirmWithinMs;
      for (;;) {
        const status = await agent.status(c.node);
        if (status === "off") return { ok: true, output: "power status: off" };
        if (clock.now() >= until) return { ok: false, reason: `power status still "${status}" after ${confirmWithinMs} ms` };
        context.progress();
        await new Promise<void>((resolve) => clock.setTimeout(resolve, pollMs));
      }
    },
  };
}
