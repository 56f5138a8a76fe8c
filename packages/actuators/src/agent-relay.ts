import { AgentCommandReply, parseMessage, type CommandOf } from "@fenceline/contracts";
import type { Handlers } from "./actuator.js";

/**
 * How the relay reaches a node's agent: sends the command and resolves with the agent's reply as
 * it came (bytes); rejects when the agent cannot be reached (no responders, no answer in time).
 * NATS: a core request on `fl.agent.<node>.cmd` (nats/agent-relay.ts); the chaos lab: the
 * simulated machine's link.
 */
export type AgentRequest = (command: CommandOf<"watchdog.stop">) => Promise<Uint8Array>;

/**
 * Forwards `watchdog.stop` to the node's agent and reports its answer (validated like every
 * message). An agent that cannot be reached is retried until the command's deadline; one that
 * answers something other than a reply fails the command.
 */
export function createAgentRelay(request: AgentRequest): Handlers {
  return {
    "watchdog.stop": async (c) => {
      let data: Uint8Array;
      try {
        data = await request(c);
      } catch (err) {
        return { ok: false, retry: true, reason: `agent unreachable: ${(err as Error).message}` };
      }
      const parsed = parseMessage(AgentCommandReply, data);
      if (!parsed.ok) return { ok: false, reason: `invalid reply from the agent (${parsed.reason}): ${parsed.error}` };
      const answer = parsed.value;
      return { ok: answer.ok, ...(answer.reason ? { reason: answer.reason } : {}) };
    },
  };
}
