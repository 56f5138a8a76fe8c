import type { NatsConnection } from "@nats-io/transport-node";
import { Subjects } from "@fenceline/streams";
import type { Handlers } from "../actuator.js";

/**
 * Forwards `watchdog.stop` to the node's agent (core NATS request on `fl.agent.<node>.cmd`).
 * An agent that does not answer is retried until the command's deadline.
 */
export function createAgentRelayHandlers(nc: NatsConnection, options: { timeoutMs?: number } = {}): Handlers {
  return {
    "watchdog.stop": async (c) => {
      try {
        const reply = await nc.request(Subjects.agentCommand(c.node), JSON.stringify(c), { timeout: options.timeoutMs ?? 1_000 });
        const answer = reply.json<{ ok: boolean; reason?: string }>();
        return { ok: answer.ok, ...(answer.reason ? { reason: answer.reason } : {}) };
      } catch (err) {
        return { ok: false, retry: true, reason: `agent unreachable: ${(err as Error).message}` };
      }
    },
  };
}
