import { AgentConfigError, loadAgentConfig, runAgent } from "@fenceline/agent";
import { parse, UsageError } from "../args.js";

const USAGE = `usage: fenceline agent --config agent.json [--check]

Runs the node agent in the foreground: heartbeats to the control plane over NATS, feeds the
watchdog, fences itself when it has lost the control plane and its peers say so (or none
answers, or only a minority of the fleet is with it), reports its configuration checksums.
If NATS cannot be reached it starts anyway and keeps trying (the watchdog is fed and the
self-fencing rules apply from the start). Stops cleanly (magic close) on SIGTERM or SIGINT.
  --config FILE   the agent's JSON configuration (docs/agent.md lists every field)
  --check         validate the configuration, print it with its defaults filled in, and exit`;

export async function agentCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { config: { type: "string", short: "c" }, check: { type: "boolean" } }, USAGE);
  if (values.help) return (console.log(USAGE), 0);
  const path = values.config as string | undefined;
  if (!path) throw new UsageError(`--config is required\n\n${USAGE}`);
  if (values.check) {
    try {
      process.stdout.write(`${JSON.stringify(await loadAgentConfig(path), null, 2)}\n`);
      return 0;
    } catch (err) {
      if (!(err instanceof AgentConfigError)) throw err;
      console.error(`fenceline agent: ${err.message}`);
      return 1;
    }
  }
  // Fatal conditions print one line and exit 1 inside runAgent; it returns after SIGTERM/SIGINT.
  await runAgent(path);
  return 0;
}
