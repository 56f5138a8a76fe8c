import type { Heartbeat, HeartbeatAck } from "@fenceline/contracts";
import type { AgentTransport, CommandHandler } from "@fenceline/agent";

/**
 * An agent transport whose link can be cut and restored, as a network does. While cut,
 * heartbeats are lost and the agent is not subscribed to anything: a command sent to it finds
 * no responder, exactly as with a node that lost its network.
 */
/**
 * What a lookup on a cut link rejects with: one instance, because peer rounds ask many times a
 * second while cut, and a new Error (its stack) each time was a good part of the lab's CPU.
 */
const unreachable = new Error("control plane unreachable");

export function createSwitchableTransport(factory: () => AgentTransport | Promise<AgentTransport>) {
  let inner: AgentTransport | null = null;
  let connecting: Promise<void> | null = null;
  const ackListeners: Array<(ack: HeartbeatAck) => void> = [];
  let commandHandler: CommandHandler | undefined;

  const transport: AgentTransport = {
    sendHeartbeat(heartbeat: Heartbeat) {
      inner?.sendHeartbeat(heartbeat);
    },
    onAck(callback) {
      ackListeners.push(callback);
    },
    onCommand(handler) {
      commandHandler = handler;
    },
    async lookupNodeState(node, timeoutMs) {
      if (!inner?.lookupNodeState) throw unreachable;
      return inner.lookupNodeState(node, timeoutMs);
    },
    async withdraw(heartbeat, timeoutMs) {
      return inner?.withdraw ? inner.withdraw(heartbeat, timeoutMs) : false;
    },
    async close() {
      await switchable.disconnect();
    },
  };

  const switchable = {
    transport,
    get connected() {
      return inner !== null;
    },
    async connect(): Promise<void> {
      if (inner || connecting) return connecting ?? undefined;
      connecting = (async () => {
        const next = await factory();
        next.onAck((ack) => ackListeners.forEach((l) => l(ack)));
        next.onCommand((command) => (commandHandler ? commandHandler(command) : Promise.resolve({ ok: false, reason: "agent not ready" })));
        inner = next;
      })();
      try {
        await connecting;
      } finally {
        connecting = null;
      }
    },
    async disconnect(): Promise<void> {
      if (connecting) await connecting;
      const current = inner;
      inner = null;
      await current?.close();
    },
  };
  return switchable;
}
export type SwitchableTransport = ReturnType<typeof createSwitchableTransport>;
