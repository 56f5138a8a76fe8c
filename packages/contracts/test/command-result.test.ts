import { describe, expect, it } from "vitest";
import { COMMAND_KINDS, CommandResult, NodeEvent, type CommandResultData } from "../src/index.js";

const envelope = { v: 1, id: "result:cmd:n1:3:0", node: "n1", at: 1_000, source: "actuator:cluster", type: "command.result" } as const;
const result = (data: Record<string, unknown>) => ({ ...envelope, data: { commandId: "cmd:n1:3:0", epoch: 1, ok: true, ...data } });

describe("command.result: one shape per command kind", () => {
  it("accepts every kind without facts, and each kind's own facts", () => {
    for (const kind of COMMAND_KINDS) expect(CommandResult.safeParse(result({ kind })).success, kind).toBe(true);
    const good: Array<[string, Record<string, unknown>]> = [
      ["taint.add", { taint: "fenceline.io/fencing" }],
      ["taint.remove", { taint: "node.kubernetes.io/out-of-service" }],
      ["pods.delete", { deleted: 3 }],
      ["workloads.await-gone", { gone: true }],
      ["workloads.await-gone", { gone: true, deleted: 2 }],
      ["cluster.version", { serverVersion: "v1.30.2" }],
      ["fence.poweroff", { device: "pdu-a,pdu-b", power: "off" }],
      ["fence.poweroff", { device: "ipmi", error: "auth" }],
      ["reprovision", { attempt: 2, ticket: 7 }],
      ["reprovision", { attempt: 1 }],
      ["slot.acquire", { majoritySince: 1_767_225_600_000 }],
    ];
    for (const [kind, facts] of good)
      expect(CommandResult.safeParse(result({ kind, facts })).error, `${kind} ${JSON.stringify(facts)}`).toBeUndefined();
  });

  it("refuses another kind's facts, unknown facts, wrong types and unknown kinds", () => {
    const bad: Array<[string, Record<string, unknown>]> = [
      ["taint.add", { attempt: 1 }],
      ["reprovision", { taint: "x" }],
      ["reprovision", { attempt: "1" }],
      ["slot.acquire", { majoritySince: "yesterday" }],
      ["cluster.version", { serverVersion: 130 }],
      ["workloads.await-gone", { gone: false }],
      ["watchdog.stop", { n: 1 }],
      ["pods.delete", { deleted: -1 }],
    ];
    for (const [kind, facts] of bad)
      expect(CommandResult.safeParse(result({ kind, facts })).success, `${kind} ${JSON.stringify(facts)}`).toBe(false);
    expect(NodeEvent.safeParse(result({ kind: "reboot.now" })).success).toBe(false);
    // Fenceline no longer deletes VolumeAttachments (docs/kubernetes.md, "Decisions").
    expect(NodeEvent.safeParse(result({ kind: "volumeattachments.delete" })).success).toBe(false);
    expect(NodeEvent.safeParse(result({ kind: "taint.add", extra: true })).success).toBe(false);
  });

  it("narrows on kind: the facts of a result are its kind's", () => {
    const parsed = CommandResult.parse(result({ kind: "reprovision", facts: { attempt: 2, ticket: 7 } }));
    const data: CommandResultData = parsed.data;
    if (data.kind !== "reprovision") throw new Error("kind");
    // Typed: attempt is a number here, not string | number | boolean.
    const attempt: number | undefined = data.facts?.attempt;
    expect(attempt).toBe(2);
  });

  it("parses results as the earlier free-form facts record wrote them (events in FL_EVENTS stay valid)", () => {
    // What the actuators of the previous release published, kind by kind (their facts were
    // already exactly these keys): replaying an existing FL_EVENTS reads them unchanged.
    const written = [
      result({ kind: "slot.acquire", reason: "granted: 4 of 6 healthy, 1 in remediation", facts: { majoritySince: 1_000 } }),
      result({ kind: "taint.add", output: "taint fenceline.io/fencing:NoSchedule added", facts: { taint: "fenceline.io/fencing" } }),
      result({ kind: "cluster.version", facts: { serverVersion: "1.30" } }),
      result({ kind: "pods.delete", output: "2 pods force-deleted", facts: { deleted: 2 } }),
      result({ kind: "reprovision", ok: false, reason: "provision failed", output: "# cleanup", facts: { attempt: 1, ticket: 1 } }),
      result({ kind: "watchdog.stop", ok: false, reason: "stale epoch 4 < 5" }),
    ];
    for (const event of written) expect(NodeEvent.parse(event)).toEqual(event);
  });
});
