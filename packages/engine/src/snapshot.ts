import type { StateValue } from "xstate";
import type { NodeContext } from "@fenceline/statecharts";

/** What the engine keeps per node in FL_NODES. */
export type NodeSnapshot = {
  v: 1;
  node: string;
  value: StateValue;
  /** The state as a path, e.g. "suspect.requestingSlot". */
  path: string;
  context: NodeContext;
  /** Sequence in FL_EVENTS of the last event applied: redelivered events at or below it are skipped. */
  lastSeq: number;
  policyVersion: string;
  /** Time of the last applied event. */
  updatedAt: number;
};
