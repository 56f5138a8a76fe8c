import { connectNats } from "@fenceline/bus";
import { readNodeSnapshots } from "@fenceline/read-model";
import { parse, serverUrl, table } from "@fenceline/command-line";

const USAGE = `usage: fenceline nodes [--server nats://host:port] [--json]

Shows each node's lifecycle state as the engine last recorded it (KV bucket FL_NODES), and its
fencing guarantee: watchdog (its agent's contract lets the engine assume it fenced by the safe
time), power (a power-fencing level covers it) or none (only a new boot id or an operator), with
the reason (--json: "guarantee", "guaranteeReason").`;

export async function nodesCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { server: { type: "string" }, json: { type: "boolean" } }, USAGE);
  if (values.help) return (console.log(USAGE), 0);
  const nc = await connectNats(serverUrl(values.server as string | undefined), { name: "fenceline-cli" });
  // Parsed like every message; an invalid value is named on stderr and left out.
  const snapshots = await readNodeSnapshots(nc, { onInvalid: (_node, err) => console.error(`fenceline: ${err.message}`) }).finally(() =>
    nc.close(),
  );
  if (values.json) {
    const rows = snapshots.map((s) => ({
      node: s.node,
      state: s.path,
      since: s.context.since,
      epoch: s.context.epoch,
      bootId: s.context.bootId,
      lastSeq: s.lastSeq,
      slot: s.context.slot,
      reason: s.context.operatorReason ?? s.context.pausedReason ?? s.context.forgottenReason ?? null,
      guarantee: s.context.guarantee.guarantee,
      guaranteeReason: s.context.guarantee.reason,
      contractWeak: s.context.guarantee.weak,
      membershipVersion: s.context.contract?.membershipVersion ?? 0,
      peerUrl: s.context.peerUrl,
    }));
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return 0;
  }
  if (snapshots.length === 0) return (console.log("no nodes yet"), 0);
  console.log(
    table(
      snapshots.map((s) => [
        s.node,
        s.path,
        new Date(s.context.since).toISOString(),
        String(s.context.epoch),
        s.context.bootId ?? "-",
        s.context.guarantee.guarantee,
        s.context.operatorReason ??
          s.context.pausedReason ??
          s.context.forgottenReason ??
          (s.context.guarantee.guarantee === "none" ? s.context.guarantee.reason : ""),
      ]),
      ["NODE", "STATE", "SINCE", "EPOCH", "BOOT ID", "GUARANTEE", "NOTE"],
    ),
  );
  return 0;
}
