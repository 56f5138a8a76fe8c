import { fileURLToPath } from "node:url";
import { isFencelineError } from "@fenceline/contracts";
import { UsageError } from "@fenceline/command-line";
import { auditCommand } from "./commands/audit.js";
import { nodesCommand } from "./commands/nodes.js";
import { operatorCommand } from "./commands/operator.js";
import { statechartCommand } from "./commands/statechart.js";
import { upCommand } from "./commands/up.js";

const USAGE = `usage: fenceline <command> [options]   (fenceline <command> --help for details)

  demo          run the whole system on a simulated fleet, inject faults, print a summary
  up            run the control plane (engine, detectors, actuators) in the foreground
  fence-check   read every configured node's power state through its fence devices (a preflight)
  nodes         each node's lifecycle state
  audit         the audit trail (--follow, --node, --export)
  statechart    the node lifecycle statechart (--json)
  replay        fold FL_EVENTS again and compare with FL_AUDIT (--verify, --at, --node)
  ui            serve the web page: statechart, live nodes, timelines, replay scrubber
  chaos         the deterministic chaos lab: many seeds of random faults, invariants checked
  bench replay  replay speed on a generated history of a million events
  bench recovery  time to recover a stateful workload: Fenceline vs Kubernetes vs NHC+SNR
  pause|resume|reset NODE   operator actions
  forget NODE               a node gone for good leaves the fleet (frees its slot)
  agent         the node agent (--config agent.json)
  serf-handler  serf's event handler: membership events → node events
  nats-config   a nats-server configuration: one user per role and node, least-privilege permissions

Client commands find NATS through --server or NATS_URL.`;

type Command = (argv: string[]) => Promise<number>;

/** This CLI's built bin (from dist/main.js and from src/main.ts alike): the fleet bench runs its `up`. */
const FENCELINE_BIN = fileURLToPath(new URL("../dist/bin.js", import.meta.url));

const lazy =
  (load: () => Promise<Command>): Command =>
  async (argv) =>
    (await load())(argv);

const COMMANDS: Record<string, Command> = {
  up: upCommand,
  nodes: nodesCommand,
  audit: auditCommand,
  statechart: statechartCommand,
  pause: (argv) => operatorCommand("pause", argv),
  resume: (argv) => operatorCommand("resume", argv),
  reset: (argv) => operatorCommand("reset", argv),
  forget: (argv) => operatorCommand("forget", argv),
  demo: lazy(async () => (await import("./commands/demo.js")).demoCommand),
  chaos: lazy(async () => (await import("./commands/chaos.js")).chaosCommand),
  replay: lazy(async () => (await import("./commands/replay.js")).replayCommand),
  ui: lazy(async () => (await import("./commands/ui.js")).uiCommand),
  bench: async (argv) => (await import("@fenceline/bench")).benchCommand(argv, { fencelineBin: FENCELINE_BIN }),
  // The agent's own command line (also shipped alone as `fenceline-agent`).
  agent: async (argv) => (await import("@fenceline/agent")).agentMain(argv, "fenceline agent"),
  "serf-handler": lazy(async () => (await import("./commands/serf-handler.js")).serfHandlerCommand),
  "fence-check": lazy(async () => (await import("./commands/fence-check.js")).fenceCheckCommand),
  "nats-config": lazy(async () => (await import("./commands/nats-config.js")).natsConfigCommand),
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(USAGE);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`fenceline: unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  try {
    return await command(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`fenceline ${name}: ${err.message}`);
      return 2;
    }
    if (isFencelineError(err)) {
      console.error(`fenceline ${name}: ${err.message}`);
      return 1;
    }
    console.error(`fenceline ${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  }
}
