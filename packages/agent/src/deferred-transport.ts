import type { HeartbeatAck } from "@fenceline/contracts";
import type { AgentTransport, CommandHandler } from "./ports.js";

export interface DeferredAgentTransport {
  /** Hand this to the agent at once; it works (as a cut link) until `attach` is called. */
  readonly transport: AgentTransport;
  /** Plugs in the real link once it exists; listeners registered before are carried over. */
  attach(inner: AgentTransport): void;
  readonly attached: boolean;
}

/**
 * An agent transport whose real link arrives later: the agent starts (arms and feeds its
 * watchdog, counts the control plane as lost) before NATS is reachable. Until `attach`,
 * heartbeats are dropped, no ack or command arrives and node-state lookups reject, exactly as
 * for a node whose link to the control plane is down, so the same self-fencing rules apply.
 */
export function createDeferredAgentTransport(): DeferredAgentTransport {
  let inner: AgentTransport | undefined;
  let closed = false;
  const ackListeners: Array<(ack: HeartbeatAck) => void> = [];
  let commandHandler: CommandHandler | undefined;

  const transport: AgentTransport = {
    sendHeartbeat: (heartbeat) => inner?.sendHeartbeat(heartbeat),
    onAck: (callback) => void ackListeners.push(callback),
    onCommand: (handler) => {
      commandHandler = handler;
    },
    lookupNodeState: async (node, timeoutMs) => {
      if (!inner?.lookupNodeState)
        throw new Error(inner ? "the transport cannot look up node states" : "not connected to the control plane yet");
      return inner.lookupNodeState(node, timeoutMs);
    },
    withdraw: async (heartbeat, timeoutMs) => (inner?.withdraw ? inner.withdraw(heartbeat, timeoutMs) : false),
    close: async () => {
      closed = true;
      await inner?.close();
    },
  };

  return {
    transport,
    get attached() {
      return inner !== undefined;
    },
    attach(next) {
      if (inner) throw new Error("a transport is already attached");
      if (closed) {
        void next.close();
        return;
      }
      inner = next;
      next.onAck((ack) => {
        for (const listener of ackListeners) listener(ack);
      });
      next.onCommand((command) => (commandHandler ? commandHandler(command) : Promise.resolve({ ok: false, reason: "agent not ready" })));
    },
  };
}
