import type { Heartbeat, HeartbeatAck, MembershipView } from "@fenceline/contracts";

/**
 * The heartbeat detector's answer to a heartbeat: the node's recorded state and the current
 * membership version, with the whole view when the heartbeat reported an older one (or none),
 * so a join or a leave reaches every connected agent with its next heartbeat. A view older than
 * the agent's (this detector lags) is never sent: agents only move forward.
 */
export function heartbeatAck(
  hb: Heartbeat,
  options: { at: number; state?: string | undefined; membership: MembershipView | null; withdrawn?: boolean },
): HeartbeatAck {
  const { membership } = options;
  const ack: HeartbeatAck = { v: 1, node: hb.node, at: options.at };
  if (options.state) ack.state = options.state;
  if (membership) {
    const held = hb.contract?.membershipVersion ?? 0;
    ack.membership = held < membership.version ? { version: membership.version, view: membership } : { version: membership.version };
  }
  if (options.withdrawn) ack.withdrawn = true;
  return ack;
}
