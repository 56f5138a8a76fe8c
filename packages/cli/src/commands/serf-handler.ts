import { Duration } from "@fenceline/contracts";
import { runSerfHandler } from "@fenceline/detectors";
import { parse, serverUrl, UsageError } from "@fenceline/command-line";

const USAGE = `usage: fenceline serf-handler [--server nats://host:port] [--node-tag TAG] [--timeout 10s]

Serf's event handler: serf agent -event-handler "fenceline serf-handler --server nats://..."
Reads SERF_EVENT and the member lines serf writes on stdin and publishes node events to
FL_EVENTS for nodes Fenceline knows:
  member-failed                         → signal.unhealthy {signal: "serf"}
  member-join, member-update            → signal.healthy   {signal: "serf"}
  member-leave (a graceful leave)       → signal.healthy   (not a failure: withdraws serf's opinion)
  member-reap, user and query events    → nothing (one log line, exit 0)
A member name that is not a node name is a dead letter (stderr and fl.dlq.serf-handler).
Exits 1 when NATS cannot be reached or an event is not stored within --timeout.
  --node-tag TAG   take the node name from this serf tag when a member has it
  --timeout D      bound on connecting and publishing (default 10s)`;

export async function serfHandlerCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { server: { type: "string" }, "node-tag": { type: "string" }, timeout: { type: "string" } }, USAGE);
  if (values.help) return (console.log(USAGE), 0);
  const timeout = Duration.safeParse(values.timeout ?? "10s");
  if (!timeout.success || timeout.data <= 0) throw new UsageError(`--timeout must be a duration like 10s\n\n${USAGE}`);
  const server = serverUrl(values.server as string | undefined);
  const stdin = process.stdin.isTTY ? "" : await readStdin();
  const outcome = await runSerfHandler({
    env: process.env,
    stdin,
    server,
    timeoutMs: timeout.data,
    ...(values["node-tag"] !== undefined ? { nodeTag: values["node-tag"] as string } : {}),
    say: (line) => process.stderr.write(`fenceline serf-handler: ${line}\n`),
  });
  return outcome.exitCode;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    // Serf coalesces member events; even thousands of members stay far below this.
    if (size > 8 * 1024 * 1024) throw new UsageError("more than 8 MiB on stdin: not serf member lines");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}
