import {
  createEvent,
  type Actuator,
  type Clock,
  type Command,
  type CommandKind,
  type CommandOf,
  type CommandResultData,
  type NodeEvent,
  type ResultFacts,
} from "@fenceline/contracts";

/** What a handler reports for a command of kind `K`: its facts are that kind's (contracts' `ResultFacts`). */
export type Outcome<K extends CommandKind = CommandKind> = {
  ok: boolean;
  reason?: string;
  output?: string;
  facts?: Partial<ResultFacts<K>>;
  /** Not done yet and worth another try before the deadline (e.g. the agent is unreachable). */
  retry?: boolean;
};

export type HandlerContext = {
  /** Call during long work so the message is not redelivered meanwhile. */
  progress(): void;
};

export type Handler<K extends CommandKind = CommandKind> = (command: CommandOf<K>, context: HandlerContext) => Promise<Outcome<K>>;
export type Handlers = { [K in CommandKind]?: Handler<K> };

export type Disposition = { kind: "result"; event: NodeEvent } | { kind: "retry"; reason: string };

const OUTPUT_LIMIT = 16_000;

/** Facts every result repeats from its command, so the machine can tell which one it answers. */
function echoedFacts(command: Command): Record<string, string | number> {
  switch (command.kind) {
    case "taint.add":
    case "taint.remove":
      return { taint: command.params.taint.key };
    case "reprovision":
      return { attempt: command.params.attempt, ...(command.params.ticket !== undefined ? { ticket: command.params.ticket } : {}) };
    case "fence.poweroff":
    case "fence.poweron":
      return { method: command.params.device ?? "power" };
    default:
      return {};
  }
}

/**
 * The part every actuator shares: refuse stale epochs and expired commands, run the handler,
 * and turn its outcome into a `command.result` event whose id derives from the command's id
 * (so a redelivered command's result is stored once).
 */
export function createActuator(options: { name: Actuator; handlers: Handlers; clock: Clock }) {
  const { name, handlers, clock } = options;
  const epochs = new Map<string, number>();
  const source = `actuator:${name}`;

  const resultEvent = (command: Command, outcome: Outcome): NodeEvent => {
    const echoed = echoedFacts(command);
    const facts = outcome.facts || Object.keys(echoed).length > 0 ? { ...echoed, ...outcome.facts } : undefined;
    // One shape per kind: the echoed facts and the handler's (typed by kind) make that kind's facts.
    const data = {
      commandId: command.id,
      kind: command.kind,
      epoch: command.epoch,
      ok: outcome.ok,
      ...(outcome.reason ? { reason: outcome.reason.slice(0, 2000) } : {}),
      ...(outcome.output ? { output: outcome.output.slice(-OUTPUT_LIMIT) } : {}),
      ...(facts ? { facts } : {}),
    } as CommandResultData;
    return createEvent("command.result", { id: `result:${command.id}`, node: command.node, at: clock.now(), source, data });
  };

  return {
    name,
    /** The newest epoch this actuator has seen for a node. */
    knownEpoch: (node: string) => epochs.get(node) ?? 0,
    /** Learn a node's epoch from elsewhere (e.g. the engine's snapshot). */
    observeEpoch(node: string, epoch: number) {
      if (epoch > (epochs.get(node) ?? 0)) epochs.set(node, epoch);
    },
    async execute(command: Command, context: HandlerContext = { progress() {} }): Promise<Disposition> {
      const known = epochs.get(command.node) ?? 0;
      if (command.epoch < known) {
        return { kind: "result", event: resultEvent(command, { ok: false, reason: `stale epoch ${command.epoch} < ${known}: refused` }) };
      }
      epochs.set(command.node, command.epoch);
      if (clock.now() > command.deadline) {
        return {
          kind: "result",
          event: resultEvent(command, { ok: false, reason: `deadline passed ${clock.now() - command.deadline} ms ago: not carried out` }),
        };
      }
      const handler = handlers[command.kind] as Handler | undefined;
      if (!handler) {
        return { kind: "result", event: resultEvent(command, { ok: false, reason: `actuator ${name} cannot carry out ${command.kind}` }) };
      }
      let outcome: Outcome;
      try {
        outcome = await handler(command, context);
      } catch (err) {
        outcome = { ok: false, reason: err instanceof Error ? err.message : String(err) };
      }
      if (outcome.retry && clock.now() < command.deadline) return { kind: "retry", reason: outcome.reason ?? "retry" };
      return { kind: "result", event: resultEvent(command, outcome) };
    },
  };
}
export type ActuatorCore = ReturnType<typeof createActuator>;
