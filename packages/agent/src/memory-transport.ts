import type { Heartbeat, HeartbeatAck } from "@fenceline/contracts";
import type { AgentTransport, CommandHandler, CommandReply, WatchdogStopCommand } from "./ports.js";

export interface MemoryAgentTransportOptions {
  /** While false, heartbeats are lost, no ack arrives, lookups fail and commands cannot be delivered. */
  controlPlaneReachable?: () => boolean;
  /** The control plane's reply to a heartbeat; undefined sends no ack. Delivered asynchronously. */
  respond?: (heartbeat: Heartbeat) => HeartbeatAck | undefined;
  /** Enables `lookupNodeState`: the engine's state of a node. */
  nodeState?: (node: string) => string | undefined;
}

export interface MemoryAgentTransport extends AgentTransport {
  /** Heartbeats that reached the control plane. */
  readonly delivered: readonly Heartbeat[];
  readonly dropped: number;
  readonly closed: boolean;
  /** Delivers an ack to the agent (ignores reachability: the caller decides). */
  deliverAck(ack: HeartbeatAck): void;
  /** Sends a command to the agent as the engine's actuator would. */
  sendCommand(command: WatchdogStopCommand): Promise<CommandReply>;
}

/** The agent's control-plane link in memory, for the simulator and the tests. */
export function createMemoryAgentTransport(options: MemoryAgentTransportOptions = {}): MemoryAgentTransport {
  const reachable = options.controlPlaneReachable ?? (() => true);
  const delivered: Heartbeat[] = [];
  const ackListeners: Array<(ack: HeartbeatAck) => void> = [];
  let commandHandler: CommandHandler | undefined;
  let dropped = 0;
  let closed = false;

  const deliverAck = (ack: HeartbeatAck) => {
    if (closed) return;
    for (const listener of ackListeners) listener(ack);
  };

  const transport: MemoryAgentTransport = {
    get delivered() {
      return delivered;
    },
    get dropped() {
      return dropped;
    },
    get closed() {
      return closed;
    },
    sendHeartbeat: (heartbeat) => {
      if (closed || !reachable()) {
        dropped++;
        return;
      }
      delivered.push(heartbeat);
      const ack = options.respond?.(heartbeat);
      if (ack) queueMicrotask(() => reachable() && deliverAck(ack));
    },
    onAck: (callback) => void ackListeners.push(callback),
    onCommand: (handler) => void (commandHandler = handler),
    deliverAck,
    withdraw: async (heartbeat) => {
      if (closed || !reachable()) {
        dropped++;
        return false;
      }
      delivered.push(heartbeat);
      // Without a control plane to answer (`respond`), reaching it is taken as its confirmation.
      if (!options.respond) return true;
      return options.respond(heartbeat)?.withdrawn === true;
    },
    sendCommand: async (command) => {
      if (closed || !commandHandler) throw new Error("no agent is listening for commands");
      if (!reachable()) throw new Error("the agent cannot be reached");
      return commandHandler(command);
    },
    close: async () => {
      closed = true;
    },
  };
  const nodeState = options.nodeState;
  if (nodeState) {
    transport.lookupNodeState = async (node) => {
      if (closed || !reachable()) throw new Error("control plane unreachable");
      return nodeState(node);
    };
  }
  return transport;
}
