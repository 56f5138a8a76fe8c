import { jetstream } from "@nats-io/jetstream";
import { randomUUID } from "node:crypto";
import { userInfo } from "node:os";
import { createEvent, NodeName } from "@fenceline/contracts";
import { connectNats, publishEvent } from "@fenceline/bus";
import { parse, serverUrl, UsageError } from "@fenceline/command-line";

type Verb = "pause" | "resume" | "reset" | "forget";

const HELP: Record<Verb, string> = {
  pause: "Stops remediation of a node (maintenance) until `fenceline resume`.",
  resume: "Lets a paused node be remediated again.",
  reset: "Tells Fenceline a human fixed a node that needed an operator: it rejoins (re-provisioned).",
  forget:
    "A node gone for good leaves the fleet: it frees its remediation slot and leaves the membership view (the majority is counted without it). Its agent, if it is heard again (its heartbeats resume, or it boots), brings it back as a new member. Forget a node whose agent still heartbeats and it stays out of the membership while it does: its agent then counts itself in no majority, and fences itself when cut off.",
};

const USAGE = (verb: Verb) => `usage: fenceline ${verb} NODE --reason "why" [--server nats://host:port]

${HELP[verb]}`;

/** `pause`, `resume`, `reset`, `forget`: operator actions, published as events like any other input. */
export async function operatorCommand(verb: Verb, argv: string[]): Promise<number> {
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
          : verb === "forget"
            ? createEvent("node.forgotten", { ...common, data: { reason: reason! } })
            : createEvent("operator.resume", { ...common, data: reason ? { reason } : {} });
    const ack = await publishEvent(jetstream(nc), event);
    console.log(`${event.type} for ${node} recorded (FL_EVENTS #${ack.seq})`);
    return 0;
  } finally {
    await nc.close();
  }
}
