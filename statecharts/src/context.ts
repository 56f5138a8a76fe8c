import type { AgentContract, CommandRequest, FencingGuarantee, NodeEvent, Strategy } from "@fenceline/contracts";

/**
 * How fencing was confirmed, one variant per way (the guards branch on `by`, never on text):
 * - `reboot`: the node came back with a boot id other than the one it had when fencing started;
 * - `watchdog`: its agent acknowledged `watchdog.stop` at `ackedAt` and the watchdog timeout plus
 *   the margin passed (`resetBy`) while it stayed silent;
 * - `safe-time`: silent for the safe time since its last heartbeat (`lastSeenAt`), with a healthy
 *   majority since `majoritySince` throughout;
 * - `power`: a fence agent powered it off and read the power state back (`device`: which fence
 *   device(s) did, as the fence actuator reported them);
 * - `operator`: a human said so (`fenceline reset` while it is being fenced), with the reason.
 * Fields that a snapshot written before this shape existed cannot tell are null.
 */
export type FenceConfirmation =
  | { by: "reboot"; bootIdAtFencing: string | null; bootId: string | null }
  | { by: "watchdog"; ackedAt: number | null; resetBy: number | null }
  | { by: "safe-time"; lastSeenAt: number | null; majoritySince: number | null }
  | { by: "power"; device: string | null }
  | { by: "operator"; reason: string };

export const FENCE_CONFIRMATIONS = ["reboot", "watchdog", "safe-time", "power", "operator"] as const satisfies ReadonlyArray<
  FenceConfirmation["by"]
>;

/** What one fencing (one epoch) has tried and proven so far. */
export type FenceProgress = {
  /** How fencing was confirmed; set once, then the machine moves on to remediating (or rejoining after a reboot). */
  confirmedBy: FenceConfirmation | null;
  watchdogStopAckedAt: number | null;
  /** The safe time passed; the fleet guard is asked whether a healthy majority held meanwhile. */
  checkingMajority: boolean;
  /** The fencing level being tried: an index into the node's levels (`fencingLevelsOf`). */
  level: number;
  /** Power methods (device names, or "power") that powered the node off and read it back off. */
  poweredOff: string[];
  /** The devices the fence actuator named for them. */
  devices: string[];
  /** Power methods of the levels that started, unless they cannot act on this node: unfencing powers the node on through them. */
  toPowerOn: string[];
  /**
   * What time proves (watchdog.stop acknowledged and its timeout passed, or the safe time with a
   * healthy majority): kept until a started level with the watchdog method counts it.
   */
  timeProof: Extract<FenceConfirmation, { by: "watchdog" | "safe-time" }> | null;
  /** Why each level that ended failed, for the operator. */
  failed: string[];
};

/** Nothing tried, nothing proven: a fencing about to start, or a finished one. */
export function emptyFence(): FenceProgress {
  return {
    confirmedBy: null,
    watchdogStopAckedAt: null,
    checkingMajority: false,
    level: 0,
    poweredOff: [],
    devices: [],
    toPowerOn: [],
    timeProof: null,
    failed: [],
  };
}

/** Everything the lifecycle machine remembers about one node. JSON-serialisable. */
export type NodeContext = {
  node: string;
  /** Fencing token: grows each time fencing starts. */
  epoch: number;
  bootId: string | null;
  /** The boot id the node had when fencing started: a different one later proves a reboot. */
  bootIdAtFencing: string | null;
  hostGroup: string;
  controlPlane: boolean;
  /** Active unhealthy signals ("heartbeat", "condition:Ready", "serf") and since when. */
  signals: Record<string, number>;
  /** Last sign of life (last heartbeat the control plane received). */
  lastSeenAt: number | null;
  /** Pending deadlines: timer name → due time. A `timer.fired` counts only if it matches. */
  timers: Record<string, number>;
  /** Holds a fleet-guard remediation slot. */
  slot: boolean;
  /**
   * Since when the fleet guard has seen a healthy majority (from its grant). A node silent since
   * before then sat through an outage and may only now learn it must fence itself.
   */
  majoritySince: number | null;
  /** When the current top-level state was entered. */
  since: number;
  fence: FenceProgress;
  /** How many times the node was asked to power on again after a power fence (unfencing). */
  unfenceAttempt: number;
  /** The fencing taint was put on the node and not yet removed. */
  fencingTaint: boolean;
  remediation: {
    /** Index into `policy.remediation`. */
    step: number;
    strategy: Exclude<Strategy, "Automatic"> | null;
    /** Command kinds of the current step still waiting for a successful result. */
    pending: string[];
    /** The node came back while remediation was still running. */
    nodeBack: boolean;
  };
  /** Grows with every re-provisioning command, across lifecycles; results must echo it. */
  reprovisionTicket: number;
  rejoin: {
    attempt: number;
    /** Why the node is being re-provisioned, or null when it needs no re-provisioning. */
    reprovision: string | null;
  };
  /** Last configuration checksums the agent reported, and the desired ones. */
  checksums: Record<string, string> | null;
  desiredChecksums: Record<string, string> | null;
  pausedReason: string | null;
  /** Why the node needs an operator. */
  operatorReason: string | null;
  /**
   * The fencing contract of the agent's last heartbeat the engine heard (null: none heard, or an
   * agent older than the contract): what the node can be assumed to do when it falls silent.
   */
  contract: AgentContract | null;
  /** Where its agent answers its peers (served to them in the membership view). */
  peerUrl: string | null;
  /** Its fencing guarantee under the policy, as of its last contract (`fencingGuarantee`). */
  guarantee: FencingGuarantee;
  /** Why the node was forgotten (it left the fleet), while it is. */
  forgottenReason: string | null;
};

/** The guarantee of a node whose agent has reported no contract. */
export const NO_CONTRACT_GUARANTEE: FencingGuarantee = {
  guarantee: "none",
  reason: "no fencing contract heard from this node's agent (no agent, or one older than the contract)",
  timeBased: false,
  weak: false,
};

export type NodeInput = { node: string; at?: number };

/** The machine's events are the node events of the contracts, as they are. */
export type MachineEvent = NodeEvent;

/** What the machine emits; the engine turns these into commands and audit reasons. */
export type Emitted = { type: "command"; request: CommandRequest } | { type: "reason"; text: string };

export function initialContext(input: NodeInput): NodeContext {
  return {
    node: input.node,
    epoch: 0,
    bootId: null,
    bootIdAtFencing: null,
    hostGroup: "default",
    controlPlane: false,
    signals: {},
    lastSeenAt: null,
    timers: {},
    slot: false,
    majoritySince: null,
    since: input.at ?? 0,
    fence: emptyFence(),
    unfenceAttempt: 0,
    fencingTaint: false,
    remediation: { step: 0, strategy: null, pending: [], nodeBack: false },
    reprovisionTicket: 0,
    rejoin: { attempt: 0, reprovision: null },
    checksums: null,
    desiredChecksums: null,
    pausedReason: null,
    operatorReason: null,
    contract: null,
    peerUrl: null,
    guarantee: NO_CONTRACT_GUARANTEE,
    forgottenReason: null,
  };
}
