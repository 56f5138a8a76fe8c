import { z } from "zod";
import { NodeName } from "./names.js";

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
  })
  .strict();
export type Heartbeat = z.infer<typeof Heartbeat>;

/** The detector's reply to a heartbeat: proof for the agent that the control plane hears it. */
export const HeartbeatAck = z
  .object({
    v: z.literal(1),
    node: NodeName,
    at: z.number().int().nonnegative(),
    /** The node's lifecycle state as the engine last recorded it, when known. */
    state: z.string().optional(),
  })
  .strict();
export type HeartbeatAck = z.infer<typeof HeartbeatAck>;
