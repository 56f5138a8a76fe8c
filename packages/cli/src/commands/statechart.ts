import { exportMachine } from "@fenceline/statecharts";
import { parse } from "@fenceline/command-line";
import { loadPolicy } from "../policy-file.js";

const USAGE = `usage: fenceline statechart [--json] [--policy file.json]

Prints the node lifecycle statechart: states and transitions (with --json, the machine
definition the visualizer draws).`;

export async function statechartCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { json: { type: "boolean" }, policy: { type: "string" } }, USAGE);
  if (values.help) return (console.log(USAGE), 0);
  const exported = exportMachine(loadPolicy(values.policy as string | undefined));
  if (values.json) {
    process.stdout.write(`${JSON.stringify(exported, null, 2)}\n`);
    return 0;
  }
  for (const state of exported.states) {
    const depth = state.path.split(".").length - 1;
    console.log(
      `${"  ".repeat(depth)}${state.path.split(".").pop()}${state.initial ? ` (initial: ${state.initial.split(".").pop()})` : ""}`,
    );
    for (const t of exported.transitions.filter((x) => x.source === state.path && x.targets.length > 0)) {
      console.log(`${"  ".repeat(depth + 1)}${t.event}${t.guard ? ` [${t.guard}]` : ""} → ${t.targets.join(", ")}`);
    }
  }
  return 0;
}
