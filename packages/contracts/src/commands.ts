import { z } from "zod";
import { NodeName } from "./names.js";

export const COMMAND_VERSION = 1;

export const Taint = z
  .object({
    key: z.string().min(1).max(253),
    value: z.string().max(63).optional(),
    effect: z.enum(["NoSchedule", "PreferNoSchedule", "NoExecute"]),
  })
  .strict();
export type Taint = z.infer<typeof Taint>;

/** Set while a node is suspected or being fenced: nothing new is scheduled on it. */
export const FENCING_TAINT: Taint = { key: "fenceline.io/fencing", effect: "NoSchedule" };
/** Kubernetes non-graceful shutdown taint (KEP-2268, GA in 1.28). */
export const OUT_OF_SERVICE_TAINT: Taint = {
  key: "node.kubernetes.io/out-of-service",
  value: "nodeshutdown",
  effect: "NoExecute",
};

const FenceTarget = z
  .object({
    device: z
      .string()
      .regex(/^[a-z][a-z0-9-]*$/)
      .max(64)
      .optional(),
    hostGroup: z.string().max(128).optional(),
  })
  .strict();

const Params = {
  "taint.add": z.object({ taint: Taint }).strict(),
  "taint.remove": z.object({ taint: Taint }).strict(),
  /**
   * Force-delete (grace period 0) the node's pods that must move: every pod but DaemonSet pods
   * (their controller puts them back on the same node) and mirror pods (the kubelet's static
   * pods). VolumeAttachments are left to the attach-detach controller (docs/kubernetes.md).
   */
  "pods.delete": z.object({}).strict(),
  /**
   * The out-of-service taint's second half: until the node has no pod that must move (not a
   * DaemonSet or mirror pod, not tolerating the taint) and none of their VolumeAttachments,
   * force-delete the pods the taint eviction controller evicted (what Pod GC does only once
   * the node is NotReady, which fencing has already made sure of); then report success.
   */
  "workloads.await-gone": z.object({ timeoutMs: z.number().int().positive() }).strict(),
  /** Read the cluster's server version (for the Automatic strategy). */
  "cluster.version": z.object({}).strict(),
  /** Ask the node's agent to stop feeding its watchdog: it reboots within the watchdog timeout. */
  "watchdog.stop": z
    .object({
      reason: z.string().max(256),
      /** Only this boot of the node is to stop: a node that already rebooted is fenced already. */
      bootId: z.string().max(128).optional(),
    })
    .strict(),
  /**
   * Power the node off through a fence device (`device`; every device of the node without it:
   * the `power` method) and read the power state back until it says off. `hostGroup`: the node's,
   * for devices configured per host group.
   */
  "fence.poweroff": FenceTarget,
  /** Power the node on again through a fence device (unfencing, after remediation). */
  "fence.poweron": FenceTarget,
  /** Run cleanup, then provision by host group. */
  reprovision: z
    .object({
      hostGroup: z.string().max(128),
      reason: z.string().max(256),
      attempt: z.number().int().positive(),
      /** Grows with every re-provisioning the node ever gets: its result must echo it. */
      ticket: z.number().int().positive().optional(),
    })
    .strict(),
  /**
   * Ask the fleet guard for a remediation slot. `membershipVersion`: the view in the node's last
   * heartbeat (the guard checks the majority in it and every newer one).
   */
  "slot.acquire": z.object({ controlPlane: z.boolean(), membershipVersion: z.number().int().nonnegative().optional() }).strict(),
  "slot.release": z.object({}).strict(),
} as const;

export type CommandKind = keyof typeof Params;

const TaintKey = z.string().min(1).max(253);
const Deleted = z.object({ deleted: z.number().int().nonnegative() }).strict();

/**
 * What the result of each kind of command may report besides ok/reason/output (its `facts`),
 * one shape per kind as `Params` has one per command. Results echo what tells them apart from a
 * late answer to an earlier command: the taint, the re-provisioning attempt and ticket.
 */
const Facts = {
  "taint.add": z.object({ taint: TaintKey }).strict(),
  "taint.remove": z.object({ taint: TaintKey }).strict(),
  "pods.delete": Deleted,
  /** `gone` once nothing that must move is left; `deleted`: the evicted pods it force-deleted. */
  "workloads.await-gone": z.object({ gone: z.literal(true), deleted: z.number().int().nonnegative().optional() }).strict(),
  "cluster.version": z.object({ serverVersion: z.string().min(1).max(64) }).strict(),
  "watchdog.stop": z.object({}).strict(),
  /**
   * `device`: the fence device(s) that powered the node off and read the state back, comma
   * separated ("ipmi", "pdu-a,pdu-b"), or the one that failed; `power`: the state read back;
   * `error`: a failure's code (auth, unreachable, not-confirmed…).
   */
  "fence.poweroff": z
    .object({
      /** The fencing method the command was for, echoed: its `device`, or "power" (every device of the node). */
      method: z.string().min(1).max(64).optional(),
      device: z.string().min(1).max(256).optional(),
      power: z.literal("off").optional(),
      error: z.string().min(1).max(64).optional(),
    })
    .strict(),
  /** As for fence.poweroff; `power` is the state after the agent's `on`. */
  "fence.poweron": z
    .object({
      method: z.string().min(1).max(64).optional(),
      device: z.string().min(1).max(256).optional(),
      power: z.literal("on").optional(),
      error: z.string().min(1).max(64).optional(),
    })
    .strict(),
  reprovision: z.object({ attempt: z.number().int().positive(), ticket: z.number().int().positive().optional() }).strict(),
  /** When the current unbroken run of a healthy majority began, as the guard decided on it. */
  "slot.acquire": z.object({ majoritySince: z.number().int().nonnegative() }).strict(),
  "slot.release": z.object({}).strict(),
} as const satisfies Record<keyof typeof Params, z.ZodType>;

export type ResultFacts<K extends CommandKind> = z.infer<(typeof Facts)[K]>;

function result<K extends CommandKind>(kind: K) {
  return z
    .object({
      commandId: z.string().min(1).max(256),
      kind: z.literal(kind),
      epoch: z.number().int().nonnegative(),
      ok: z.boolean(),
      /** Why it failed, or why it was refused (for example "stale epoch 2 < 3"). */
      reason: z.string().max(2048).optional(),
      /** Output worth keeping (provisioning logs, a fence agent's transcript), truncated by the actuator. */
      output: z.string().max(16_384).optional(),
      facts: z.optional(Facts[kind]),
    })
    .strict();
}

/** The data of a `command.result` event: one shape per command kind, told apart by `kind`. */
export const CommandResultData = z.discriminatedUnion("kind", [
  result("taint.add"),
  result("taint.remove"),
  result("pods.delete"),
  result("workloads.await-gone"),
  result("cluster.version"),
  result("watchdog.stop"),
  result("fence.poweroff"),
  result("fence.poweron"),
  result("reprovision"),
  result("slot.acquire"),
  result("slot.release"),
]);
export type CommandResultData = z.infer<typeof CommandResultData>;
export type CommandResultOf<K extends CommandKind> = Extract<CommandResultData, { kind: K }>;
export const COMMAND_KINDS = Object.keys(Params) as CommandKind[];

/** Which actuator carries out a command; it is the second token of the command subject. */
export const ACTUATOR_OF: Record<CommandKind, Actuator> = {
  "taint.add": "cluster",
  "taint.remove": "cluster",
  "pods.delete": "cluster",
  "workloads.await-gone": "cluster",
  "cluster.version": "cluster",
  "watchdog.stop": "agent",
  "fence.poweroff": "fence",
  "fence.poweron": "fence",
  reprovision: "provisioner",
  "slot.acquire": "guard",
  "slot.release": "guard",
};
export const ACTUATORS = ["cluster", "agent", "fence", "provisioner", "guard"] as const;
export type Actuator = (typeof ACTUATORS)[number];

function command<K extends CommandKind>(kind: K) {
  return z
    .object({
      v: z.literal(COMMAND_VERSION),
      /** Derived from the input event's stream sequence: a re-emitted command keeps its id. */
      id: z.string().min(1).max(256),
      node: NodeName,
      /** The node's fencing token; actuators refuse a command older than the newest they saw. */
      epoch: z.number().int().nonnegative(),
      kind: z.literal(kind),
      issuedAt: z.number().int().nonnegative(),
      /** After this time the command is void and is not carried out. */
      deadline: z.number().int().nonnegative(),
      /** Sequence in FL_EVENTS of the event whose fold emitted this command. */
      causedBy: z.number().int().nonnegative(),
      params: Params[kind],
    })
    .strict();
}

export const Command = z.discriminatedUnion("kind", [
  command("taint.add"),
  command("taint.remove"),
  command("pods.delete"),
  command("workloads.await-gone"),
  command("cluster.version"),
  command("watchdog.stop"),
  command("fence.poweroff"),
  command("fence.poweron"),
  command("reprovision"),
  command("slot.acquire"),
  command("slot.release"),
]);
export type Command = z.infer<typeof Command>;
export type CommandOf<K extends CommandKind> = Extract<Command, { kind: K }>;
export type CommandParams<K extends CommandKind> = z.infer<(typeof Params)[K]>;
/** What a machine asks for; the engine adds id, node, epoch, times and cause. */
export type CommandRequest = { [K in CommandKind]: { kind: K; params: CommandParams<K> } }[CommandKind];

/**
 * A node agent's reply to a command it received on `fl.agent.<node>.cmd`. Not strict: a newer
 * agent may say more, and an older relay keeps reading what it knows.
 */
export const AgentCommandReply = z.object({
  ok: z.boolean(),
  /** Why the agent refused (for example "stale epoch 4 < 5"). */
  reason: z.string().max(2048).optional(),
});
export type AgentCommandReply = z.infer<typeof AgentCommandReply>;
