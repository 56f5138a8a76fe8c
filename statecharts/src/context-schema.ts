import { z } from "zod";
import { AgentContract, COMMAND_KINDS, NodeName, Strategy } from "@fenceline/contracts";
import { NO_CONTRACT_GUARANTEE, type FenceConfirmation, type NodeContext as NodeContextType } from "./context.js";

const Millis = z.number();
const Count = z.number().int().nonnegative();
const Text = z.string();

/** The ways fencing can be confirmed (see FenceConfirmation). */
export const FenceConfirmationSchema = z.discriminatedUnion("by", [
  z.object({ by: z.literal("reboot"), bootIdAtFencing: Text.nullable(), bootId: Text.nullable() }).strict(),
  z.object({ by: z.literal("watchdog"), ackedAt: Millis.nullable(), resetBy: Millis.nullable() }).strict(),
  z.object({ by: z.literal("safe-time"), lastSeenAt: Millis.nullable(), majoritySince: Millis.nullable() }).strict(),
  z.object({ by: z.literal("power"), device: Text.nullable() }).strict(),
  z.object({ by: z.literal("operator"), reason: Text }).strict(),
]) satisfies z.ZodType<FenceConfirmation>;

const Guarantee = z
  .object({ guarantee: z.enum(["watchdog", "power", "none"]), reason: Text, timeBased: z.boolean(), weak: z.boolean() })
  .strict();

const Context = z
  .object({
    node: NodeName,
    epoch: Count,
    bootId: Text.nullable(),
    bootIdAtFencing: Text.nullable(),
    hostGroup: Text,
    controlPlane: z.boolean(),
    signals: z.record(Text, Millis),
    lastSeenAt: Millis.nullable(),
    timers: z.record(Text, Millis),
    slot: z.boolean(),
    majoritySince: Millis.nullable(),
    since: Millis,
    fence: z
      .object({
        confirmedBy: FenceConfirmationSchema.nullable(),
        watchdogStopAckedAt: Millis.nullable(),
        checkingMajority: z.boolean(),
        // Fencing levels (a snapshot written before them starts at level 0 with nothing tried).
        level: Count.default(0),
        poweredOff: z.array(Text).default([]),
        devices: z.array(Text).default([]),
        toPowerOn: z.array(Text).default([]),
        timeProof: z
          .discriminatedUnion("by", [
            z.object({ by: z.literal("watchdog"), ackedAt: Millis.nullable(), resetBy: Millis.nullable() }).strict(),
            z.object({ by: z.literal("safe-time"), lastSeenAt: Millis.nullable(), majoritySince: Millis.nullable() }).strict(),
          ])
          .nullable()
          .default(null),
        failed: z.array(Text).default([]),
      })
      .strict(),
    unfenceAttempt: Count.default(0),
    fencingTaint: z.boolean(),
    remediation: z
      .object({
        step: Count,
        strategy: Strategy.exclude(["Automatic"]).nullable(),
        pending: z.array(z.enum(COMMAND_KINDS)),
        nodeBack: z.boolean(),
      })
      .strict(),
    reprovisionTicket: Count,
    rejoin: z.object({ attempt: Count, reprovision: Text.nullable() }).strict(),
    checksums: z.record(Text, Text).nullable(),
    desiredChecksums: z.record(Text, Text).nullable(),
    pausedReason: Text.nullable(),
    operatorReason: Text.nullable(),
    // Absent from snapshots written before the contract: no contract, so nothing assumed by time
    // until the node's agent is heard again.
    contract: AgentContract.nullable().default(null),
    peerUrl: Text.nullable().default(null),
    guarantee: Guarantee.default(NO_CONTRACT_GUARANTEE),
    forgottenReason: Text.nullable().default(null),
  })
  .strict();

/**
 * A snapshot written before `confirmedBy` was a union held a sentence: "reboot: boot id A → B",
 * "fence agent: powered off", "watchdog stop acknowledged and its timeout passed" or "safe time:
 * silent for …". Those four are the only ones the machine ever wrote; each is read into its
 * variant once, here, from the sentence and the rest of the same context (what it cannot tell
 * is null). Anything else stays as it is and fails validation.
 */
function upgradeLegacyConfirmation(raw: unknown): unknown {
  if (typeof raw !== "object" || raw === null) return raw;
  const context = raw as Record<string, unknown>;
  const fence = context.fence as Record<string, unknown> | undefined;
  const text = fence?.confirmedBy;
  if (typeof text !== "string") return raw;
  const nullable = (v: unknown) => (v === undefined ? null : v);
  let confirmedBy: unknown = text;
  const reboot = /^reboot: boot id (.*) → (.*)$/.exec(text);
  const id = (s: string) => (s === "null" ? null : s);
  if (reboot) confirmedBy = { by: "reboot", bootIdAtFencing: id(reboot[1]!), bootId: id(reboot[2]!) };
  else if (text.startsWith("fence agent: ")) confirmedBy = { by: "power", device: null };
  else if (text.startsWith("watchdog stop acknowledged"))
    confirmedBy = { by: "watchdog", ackedAt: nullable(fence!.watchdogStopAckedAt), resetBy: null };
  else if (text.startsWith("safe time: "))
    confirmedBy = { by: "safe-time", lastSeenAt: nullable(context.lastSeenAt), majoritySince: nullable(context.majoritySince) };
  return { ...context, fence: { ...fence, confirmedBy } };
}

/**
 * A node's machine context as stored in its snapshot (FL_NODES), parsed like every message;
 * snapshots written by the previous release (a sentence in `confirmedBy`) are upgraded.
 */
export const NodeContextSchema: z.ZodType<NodeContextType> = z.preprocess(upgradeLegacyConfirmation, Context);
