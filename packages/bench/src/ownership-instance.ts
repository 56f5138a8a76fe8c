/**
 * One engine instance of `fenceline bench ownership`, run as a child process (fork) so that the
 * benchmark can kill it with SIGKILL. Its argument is a JSON object (InstanceArgs); it reports
 * over the IPC channel: "ready", every change of the partitions it owns, every batch it folded.
 */
import { DEFAULT_POLICY } from "@fenceline/contracts";
import { connectNats, createLogger } from "@fenceline/bus";
import { runEngine } from "@fenceline/engine";
import { idleClock } from "./bench-nats.js";

export type InstanceArgs = { url: string; instanceId: string; ownership: "leases" | "pinned"; leaseMs: number; partitions: number };
export type InstanceReport =
  | { type: "ready"; owned: number[]; at: number }
  | { type: "owned"; owned: number[]; at: number }
  | { type: "batch"; partition: number; applied: number[]; nodes: string[]; skipped: number; at: number };

const args = JSON.parse(process.argv[2]!) as InstanceArgs;
const send = (report: InstanceReport) => process.send?.(report);
const nc = await connectNats(args.url, { name: `bench-ownership-${args.instanceId}` });
const engine = await runEngine({
  nc,
  policy: DEFAULT_POLICY,
  log: createLogger("bench-ownership", { level: "error" }),
  clock: idleClock,
  instanceId: args.instanceId,
  ownership: args.ownership,
  leaseMs: args.leaseMs,
  partitions: args.partitions,
  onPartitions: (owned) => send({ type: "owned", owned, at: Date.now() }),
  onBatch: (outcome, partition) =>
    send({
      type: "batch",
      partition,
      applied: outcome.applied.map((a) => a.seq),
      nodes: outcome.applied.map((a) => a.node),
      skipped: outcome.skipped,
      at: Date.now(),
    }),
});
send({ type: "ready", owned: engine.partitions(), at: Date.now() });
process.on("message", (message) => {
  if (message !== "stop") return;
  void engine
    .stop()
    .then(() => nc.close())
    .finally(() => process.exit(0));
});
