import { jetstream } from "@nats-io/jetstream";
import { randomUUID } from "node:crypto";
import { userInfo } from "node:os";
import { createEvent, NodeName } from "@fenceline/contracts";
import { connectNats, publishEvent } from "@fenceline/bus";
import { parse, serverUrl, UsageError } from "@fenceline/command-line";

const USAGE = (verb: string) => `usage: fenceline ${verb} NODE --reason "why" [--server nats://host:port]

${{ pause: "Stops remediation of a node (maintenance) until `fenceline resume`.", resume: "Lets a paused node be remediated again.", reset: "Tells Fenceline a human fixed a node that needed an operator: it rejoins (re-provisioned)." }[verb]}`;

/** `pause`, `resume`, `reset`: operator actions, published as events like any other input. */
export async function operatorCommand(verb: "pause" | "resume" | "reset", argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { server: { type: "string" }, reason: { type: "string" } }, USAGE(verb));
  if (values.help) return (console.log(USAGE(verb)), 0);
  const node = positionals[0];
  if (!node || !NodeName.safeParse(node).success) throw new UsageError(`a valid node name is required\n\n${USAGE(verb)}`);
  const reason = values.reason as string | undefined;
  if (verb !== "resume" && !reason) throw new UsageError(`--reason is required\n\n${USAGE(verb)}`);
  const nc = await connectNats(serverUrl(values.server as string | undefined), { name: "fenceline-cli" });
  try {
    const by = `operator:${userInfo().username}`;
    const common = { id: `op:${randomUUID()}`, node, at: Date.now(), source: by };
    const event =
      verb === "pause"
        ? createEvent("operator.pause", { ...common, data: { reason: reason! } })
        : verb === "reset"
          ? createEvent("operator.reset", { ...common, data: { reason: reason! } })
          : createEvent("operator.resume", { ...common, data: reason ? { reason } : {} });
    const ack = await publishEvent(jetstream(nc), event);
    console.log(`${event.type} for ${node} recorded (FL_EVENTS #${ack.seq})`);
    return 0;
  } finally {
    await nc.close();
  }
}
