import type { AgentContract, CommandKind, NodeEvent, NodeEventOf, NodeEventType, Policy } from "@fenceline/contracts";
import { CommandResultData, contractMeeting, createEvent } from "@fenceline/contracts";
import { createNodeMachine, initialState, statePath, step, type Emitted, type MachineState } from "@fenceline/statecharts";
import { takenTransitions } from "./coverage.js";

type CommandEmitted = Extract<Emitted, { type: "command" }>;
type ReasonEmitted = Extract<Emitted, { type: "reason" }>;

export type HarnessOptions = {
  node?: string;
  machine?: ReturnType<typeof createNodeMachine>;
  /** Called with the key of every transition taken (see coverage.ts); slower, for coverage only. */
  onTransition?: (key: string) => void;
  /**
   * The contract `node.joined` and `heartbeat.resumed` carry when a test gives none: by default
   * one that meets the policy (a hardware watchdog, the policy's timing, membership view 1);
   * null sends none (an agent older than the contract).
   */
  contract?: AgentContract | null;
};

/** A fencing contract that meets `policy` exactly (see contractMeeting). */
export const contractFor = contractMeeting;

/** Drives one node's machine with terse events; keeps what it emitted per step. */
export function createHarness(policy: Policy, options: HarnessOptions = {}) {
  const node = options.node ?? "n1";
  const machine = options.machine ?? createNodeMachine(policy);
  let state: MachineState = initialState(machine, node, 0);
  let seq = 0;
  let last: Emitted[] = [];
  const all: Array<{ path: string; emitted: Emitted[]; event: NodeEvent }> = [];
  const contract = options.contract === undefined ? contractFor(policy) : options.contract;
  const harness = {
    send<T extends NodeEventType>(type: T, data: NodeEventOf<T>["data"], at: number) {
      seq += 1;
      const addContract = (type === "node.joined" || type === "heartbeat.resumed") && contract && !("contract" in data);
      const withContract = (addContract ? { ...data, contract } : data) as NodeEventOf<T>["data"];
      const event = createEvent(type, { id: `e${seq}`, node, at, source: "test", data: withContract }) as NodeEvent;
      if (options.onTransition) for (const key of takenTransitions(machine, state, event)) options.onTransition(key);
      const result = step(machine, state, event);
      state = result.state;
      last = result.emitted;
      all.push({ path: statePath(state.value), emitted: last, event });
      return harness;
    },
    /** Fires the pending timer `name` at its due time. */
    fire(name: string) {
      const due = state.context.timers[name];
      if (due === undefined) throw new Error(`no pending timer ${name}; pending: ${JSON.stringify(state.context.timers)}`);
      return harness.send("timer.fired", { timer: name, due }, due);
    },
    /** A result for a command of `kind`, for the current epoch unless `extra.epoch` says otherwise. */
    result(
      kind: CommandKind,
      ok: boolean,
      at: number,
      extra: { reason?: string; epoch?: number; facts?: Record<string, string | number | boolean> } = {},
    ) {
      const { epoch = state.context.epoch, ...rest } = extra;
      // Parsed, so a result whose facts do not fit its kind fails here as it would at the boundary.
      return harness.send("command.result", CommandResultData.parse({ commandId: `c-${kind}`, kind, epoch, ok, ...rest }), at);
    },
    /** Replaces the state (for states no event sequence reaches, such as an old snapshot). */
    load(next: MachineState) {
      state = next;
      return harness;
    },
    get path() {
      return statePath(state.value);
    },
    get context() {
      return state.context;
    },
    get state() {
      return state;
    },
    /** Everything emitted by the last step, in order. */
    get emitted() {
      return last;
    },
    /** Commands emitted by the last step. */
    get commands() {
      return last.filter((e): e is CommandEmitted => e.type === "command").map((e) => e.request);
    },
    /** Command kinds emitted by the last step. */
    get kinds() {
      return harness.commands.map((c) => c.kind);
    },
    /** Audit reasons emitted by the last step. */
    get reasons() {
      return last.filter((e): e is ReasonEmitted => e.type === "reason").map((e) => e.text);
    },
    history: all,
  };
  return harness;
}

export type Harness = ReturnType<typeof createHarness>;
