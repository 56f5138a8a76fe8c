import type { Clock } from "@fenceline/contracts";
import type { PeerAnswer } from "./peer-protocol.js";
import type { PeerQuestionHandler, PeerTransport } from "./ports.js";

export interface MemoryPeerNetworkOptions {
  clock: Clock;
  /** The link matrix, owned by the caller (the simulator's partitions). Default: all links up. */
  canReach?: (from: string, to: string) => boolean;
  /** Answer latency. Default 0. */
  latencyMs?: number;
}

export interface MemoryPeerNetwork {
  /** The transport of one node's agent. */
  transportFor(node: string): PeerTransport;
}

/**
 * Agents talking to each other in memory. A question needs the link both ways (the answer has
 * to come back); without it, or without a serving agent, the asker waits out its timeout and
 * gets no answer, as over a real network.
 */
export function createMemoryPeerNetwork(options: MemoryPeerNetworkOptions): MemoryPeerNetwork {
  const { clock } = options;
  const canReach = options.canReach ?? (() => true);
  const latencyMs = options.latencyMs ?? 0;
  const handlers = new Map<string, PeerQuestionHandler>();

  const after = (ms: number) => new Promise<void>((resolve) => clock.setTimeout(resolve, ms));

  return {
    transportFor: (node) => {
      let closed = false;
      let served: PeerQuestionHandler | undefined;
      return {
        ask: async ({ node: peer }, question, timeoutMs) => {
          let timer: unknown;
          const timeout = new Promise<undefined>((resolve) => (timer = clock.setTimeout(() => resolve(undefined), timeoutMs)));
          const exchange = async (): Promise<PeerAnswer | undefined> => {
            if (latencyMs > 0) await after(latencyMs);
            const handler = handlers.get(peer);
            if (closed || !handler || !canReach(node, peer) || !canReach(peer, node)) return timeout;
            const answer = await handler(question).catch(() => undefined);
            return canReach(peer, node) ? answer : timeout;
          };
          const answer = await Promise.race([exchange(), timeout]);
          clock.clearTimeout(timer);
          return answer;
        },
        serve: (handler) => {
          served = handler;
          handlers.set(node, handler);
        },
        close: async () => {
          closed = true;
          // A restarted agent of the same node may have registered since: leave its handler.
          if (served && handlers.get(node) === served) handlers.delete(node);
        },
      };
    },
  };
}
