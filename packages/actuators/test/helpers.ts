import { Command, type CommandKind, type CommandParams, type NodeEvent, type NodeEventOf } from "@fenceline/contracts";
import type { Disposition } from "../src/actuator.js";

let counter = 0;

/** A valid command (parsed with the contract's schema), by default due in a minute from `now`. */
export function command<K extends CommandKind>(
  kind: K,
  params: CommandParams<K>,
  fields: { node?: string; epoch?: number; now?: number; deadline?: number; id?: string } = {},
): Extract<Command, { kind: K }> {
  const now = fields.now ?? 0;
  return Command.parse({
    v: 1,
    id: fields.id ?? `cmd-${kind}-${++counter}`,
    node: fields.node ?? "n1",
    epoch: fields.epoch ?? 1,
    kind,
    issuedAt: now,
    deadline: fields.deadline ?? now + 60_000,
    causedBy: 1,
    params,
  }) as Extract<Command, { kind: K }>;
}

/** The command.result event of a disposition (fails the test when it is a retry). */
export function resultOf(disposition: Disposition): NodeEventOf<"command.result"> {
  if (disposition.kind !== "result") throw new Error(`expected a result, got retry: ${disposition.reason}`);
  const event: NodeEvent = disposition.event;
  if (event.type !== "command.result") throw new Error(`expected command.result, got ${event.type}`);
  return event;
}

export const progress = { progress() {} };
