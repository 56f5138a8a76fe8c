import { parseArgs } from "node:util";
import { Duration, isFencelineError } from "@fenceline/contracts";
import { AgentConfigError, loadAgentConfig } from "./config.js";
import { runAgent, runGate } from "./main.js";

const usage = (name: string) => `usage: ${name} --config agent.json [--check | --gate [--gate-timeout DURATION]]

Runs the node agent in the foreground: heartbeats to the control plane over NATS, feeds the
watchdog, fences itself when it has lost the control plane and its peers say so (or none
answers, or only a minority of the fleet is with it), reports its configuration checksums.
If NATS cannot be reached it starts anyway and keeps trying (the watchdog is fed and the
self-fencing rules apply from the start). Stops cleanly (magic close) on SIGTERM or SIGINT.
  --config FILE   the agent's JSON configuration (docs/agent.md lists every field)
  --check         validate the configuration, print it with its defaults filled in, and exit
  --gate          do not run the agent: wait until the control plane says this node may start
                  its workloads (the engine's state of it is healthy or rejoining, or it does not
                  know it), then exit 0. For the kubelet's ExecStartPre, so that a machine reset
                  while cut off from NATS cannot restart pods the engine is moving elsewhere
                  (docs/agent.md, "The boot gate"). Asks every 2 s; prints why it waits.
  --gate-timeout  give up after this long and exit 1 (default: wait as long as it takes)`;

class UsageError extends Error {}

/**
 * The node agent's command line (`fenceline-agent`, also `fenceline agent`): resolves with the
 * exit status. `name` is how messages name the command. A usage error prints one line and the
 * usage and exits 2; a bad configuration or any other fatal condition prints one line and exits 1.
 */
export async function agentMain(argv: string[], name = "fenceline-agent"): Promise<number> {
  try {
    return await agentCommand(argv, name);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof UsageError) {
      console.error(`${name}: ${message}`);
      return 2;
    }
    console.error(
      `${name}: ${err instanceof AgentConfigError || isFencelineError(err) || !(err instanceof Error) ? message : (err.stack ?? message)}`,
    );
    return 1;
  }
}

async function agentCommand(argv: string[], name: string): Promise<number> {
  const USAGE = usage(name);
  let values: { config?: string; check?: boolean; gate?: boolean; "gate-timeout"?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: "string", short: "c" },
        check: { type: "boolean" },
        gate: { type: "boolean" },
        "gate-timeout": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
      strict: true,
    }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${USAGE}`);
  }
  if (values.help) return (console.log(USAGE), 0);
  const path = values.config;
  if (!path) throw new UsageError(`--config is required\n\n${USAGE}`);
  if (values["gate-timeout"] !== undefined && !values.gate) throw new UsageError(`--gate-timeout goes with --gate\n\n${USAGE}`);
  if (values.gate) {
    let timeoutMs: number | undefined;
    if (values["gate-timeout"] !== undefined) {
      const text = values["gate-timeout"];
      const parsed = Duration.safeParse(/^\d+$/.test(text) ? Number(text) : text);
      if (!parsed.success) throw new UsageError(`--gate-timeout: "${text}" is not a duration like 90s, 5m or 250ms\n\n${USAGE}`);
      timeoutMs = parsed.data;
    }
    return await runGate(path, timeoutMs !== undefined ? { timeoutMs } : {});
  }
  if (values.check) {
    process.stdout.write(`${JSON.stringify(await loadAgentConfig(path), null, 2)}\n`);
    return 0;
  }
  // Fatal conditions print one line and exit 1 inside runAgent; it returns after SIGTERM/SIGINT.
  await runAgent(path);
  return 0;
}
