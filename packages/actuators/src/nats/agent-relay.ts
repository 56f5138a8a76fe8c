import type { NatsConnection } from "@nats-io/transport-node";
import { Subjects } from "@fenceline/streams";
import type { Handlers } from "../actuator.js";
import { createAgentRelay, type AgentRequest } from "../agent-relay.js";

/** Reaches a node's agent with a core NATS request on `fl.agent.<node>.cmd`. */
export function natsAgentRequest(nc: NatsConnection, options: { timeoutMs?: number } = {}): AgentRequest {
  return async (c) => (await nc.request(Subjects.agentCommand(c.node), JSON.stringify(c), { timeout: options.timeoutMs ?? 1_000 })).data;
}

/**
 * Forwards `watchdog.stop` to the node's agent (core NATS request on `fl.agent.<node>.cmd`).
 * An agent that does not answer is retried until the command's deadline.
 */
export function createAgentRelayHandlers(nc: NatsConnection, options: { timeoutMs?: number } = {}): Handlers {
  return createAgentRelay(natsAgentRequest(nc, options));
}
