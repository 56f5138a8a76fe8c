import { humanOutput, intOption, parse, printJson, table, UsageError } from "../args.js";
import { benchReplay } from "../bench/replay-bench.js";

const USAGE = `usage: fenceline bench replay [--events N] [--nodes N] [--seed N] [--json]
       fenceline bench recovery [options]   (fenceline bench recovery --help)
       fenceline bench throughput|fleet|restart [options]   (… --help; see docs/scale.md)

Generates a synthetic but valid history (nodes crashing, flapping, rebooting, paused; every
timer fired at its due time and every command answered) and times replaying it: every event
folded through the statechart and compared with its audit record, as \`fenceline replay\` does.
Generation is not timed. Prints a table; with --json the table goes to stderr and stdout is one JSON document,
{ "events": n, "eventsPerSec": n, "elapsedMs": n }.
  --events N   events to generate and replay (default 1000000)
  --nodes N    fleet size (default 2000)
  --seed N     random seed (default 1)`;

const int = (value: unknown, name: string, fallback: number, min: number) => intOption(value, name, fallback, min, USAGE);

export async function benchCommand(argv: string[]): Promise<number> {
  if (argv[0] === "recovery") return (await import("../bench/recovery.js")).benchRecovery(argv);
  if (argv[0] === "throughput") return (await import("../bench/throughput.js")).benchThroughput(argv);
  if (argv[0] === "fleet") return (await import("../bench/fleet.js")).benchFleet(argv);
  if (argv[0] === "restart") return (await import("../bench/restart.js")).benchRestart(argv);
  const { values, positionals } = parse(argv, { events: { type: "string" }, nodes: { type: "string" }, seed: { type: "string" }, json: { type: "boolean" } }, USAGE);
  if (values.help) return (console.log(USAGE), 0);
  if (positionals[0] !== "replay" || positionals.length > 1) throw new UsageError(`which benchmark? "replay" or "recovery"\n\n${USAGE}`);
  const events = int(values.events, "events", 1_000_000, 1);
  const nodes = int(values.nodes, "nodes", 2_000, 1);
  const seed = int(values.seed, "seed", 1, 0);
  const r = benchReplay({ events, nodes, seed });
  const mix = Object.entries(r.eventTypes).sort((a, b) => b[1] - a[1]).map(([type, n]) => `${type} ${((100 * n) / r.events).toFixed(1)}%`).join(", ");
  humanOutput(values.json).write(
    `${table(
      [
        ["events replayed", String(r.events)],
        ["nodes", String(r.nodes)],
        ["transitions", String(r.transitions)],
        ["divergences", String(r.divergences)],
        ["history span", `${(r.spanMs / 3_600_000).toFixed(1)} h simulated`],
        ["replay time", `${r.elapsedMs} ms (one thread; generation ${r.generateMs} ms, not counted)`],
        ["events per second", String(r.eventsPerSec)],
        ["CPU time", `${r.cpuMs} ms (all threads of the process, GC included)`],
        ["peak heap", `${r.heapUsedMb} MB`],
      ],
      ["REPLAY BENCHMARK", ""],
    )}\nevent mix: ${mix}\n`,
  );
  if (values.json) printJson({ events: r.events, eventsPerSec: r.eventsPerSec, elapsedMs: r.elapsedMs });
  return r.divergences === 0 ? 0 : 1;
}
