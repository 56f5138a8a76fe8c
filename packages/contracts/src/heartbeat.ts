import { z } from "zod";
import { MembershipView } from "./membership.js";
import { NodeName } from "./names.js";

/**
 * What resets the node when its agent stops feeding: a `hardware` watchdog device, the kernel's
 * `softdog` (resets even if the agent dies, not a hung kernel), the agent's own `software`
 * fallback timer (dies with the agent), or `none` (not a watchdog device, or the contract was
 * withdrawn).
 */
export const WatchdogKind = z.enum(["hardware", "softdog", "software", "none"]);
export type WatchdogKind = z.infer<typeof WatchdogKind>;

const Ms = z.number().int().nonnegative();

/**
 * The agent's fencing contract, in every heartbeat: everything the engine's assumption "a silent
 * node has fenced itself by the safe time" depends on. The engine checks it against the policy
 * (`fencingGuarantee`) and assumes nothing by time of a node whose contract does not support it.
 */
export const AgentContract = z
  .object({
    /** The agent's own timing (its config), in milliseconds. */
    timing: z.object({ controlPlaneTimeoutMs: Ms, peerRoundMs: Ms, watchdogTimeoutMs: Ms, marginMs: Ms }).strict(),
    heartbeatIntervalMs: Ms,
    watchdog: z.object({ kind: WatchdogKind, timeoutMs: Ms }).strict(),
    /** The membership view this agent holds and would decide with when cut off (0: none). */
    membershipVersion: z.number().int().nonnegative(),
    /** Set by a cleanly stopping agent: it disarms its watchdog, so nothing of this contract holds. */
    withdrawn: z.literal(true).optional(),
  })
  .strict();
export type AgentContract = z.infer<typeof AgentContract>;

/** What an agent sends on `fl.hb.<node>` (core NATS), every heartbeat interval. */
export const Heartbeat = z
  .object({
    v: z.literal(1),
    node: NodeName,
    bootId: z.string().min(1).max(128),
    /** Grows on every agent start. */
    incarnation: z.number().int().nonnegative(),
    /** Grows on every heartbeat of this incarnation. */
    seq: z.number().int().nonnegative(),
    sentAt: z.number().int().nonnegative(),
    hostGroup: z.string().max(128).optional(),
    controlPlane: z.boolean().optional(),
    checksums: z.record(z.string().max(128), z.string().max(256)).optional(),
    selfFenced: z.object({ at: z.number(), reason: z.string().max(256), bootId: z.string().max(128) }).optional(),
    /** Absent only from agents older than the contract: the engine then assumes nothing by time. */
    contract: AgentContract.optional(),
    /** Where this agent answers its peers (served to them in the membership view). */
    peerUrl: z.string().min(1).max(512).optional(),
    /** The last heartbeat of a clean stop (sent as a request, with `contract.withdrawn`). */
    stopping: z.literal(true).optional(),
  })
  .strict();
export type Heartbeat = z.infer<typeof Heartbeat>;

/** An ack may carry the whole membership view: up to NATS's default maximum payload (parse with this `maxBytes`). */
export const MAX_ACK_BYTES = 1024 * 1024;

/** The detector's reply to a heartbeat: proof for the agent that the control plane hears it. */
export const HeartbeatAck = z
  .object({
    v: z.literal(1),
    node: NodeName,
    at: z.number().int().nonnegative(),
    /** The node's lifecycle state as the engine last recorded it, when known. */
    state: z.string().optional(),
    /**
     * The control plane's current membership version and, when the heartbeat reported an older
     * one, the whole view (the agent stores it durably before it uses it).
     */
    membership: z.object({ version: z.number().int().nonnegative(), view: MembershipView.optional() }).strict().optional(),
    /** Answer to a `stopping` heartbeat: the withdrawal of the contract is stored. */
    withdrawn: z.literal(true).optional(),
  })
  .strict();
export type HeartbeatAck = z.infer<typeof HeartbeatAck>;

/** The contract of an agent that stopped cleanly: nothing resets the node any more. */
export function withdrawnContract(contract: AgentContract): AgentContract {
  return { ...contract, watchdog: { kind: "none", timeoutMs: 0 }, withdrawn: true };
}
