import { humanOutput, intOption, parse, printJson, table, UsageError } from "@fenceline/command-line";
import { INTERPRETER_NAMES, type Interpreter } from "@fenceline/engine";
import { benchReplay, type InterpreterRun } from "./replay-bench.js";

const USAGE = `usage: fenceline bench replay [--events N] [--nodes N] [--seed N] [--interpreter both|fast|xstate] [--json]
       fenceline bench recovery [options]   (fenceline bench recovery --help)
       fenceline bench throughput|fleet|restart|ownership [options]   (… --help; see docs/scale.md)

Generates a synthetic but valid history (nodes crashing, flapping, rebooting, paused; every
timer fired at its due time and every command answered) and times replaying it: every event
folded through the statechart and compared with its audit record, as \`fenceline replay\` does,
with each interpreter side by side on the same history: xstate's own transition() (what
\`fenceline replay\` uses by default) and the lean interpreter (\`--interpreter fast\`, what the
live engine runs). Generation is not timed. Prints a table; with --json the table goes to stderr
and stdout is one JSON document, { "events": n, "eventsPerSec": n, "elapsedMs": n,
"interpreters": { "<name>": { "eventsPerSec": n, "elapsedMs": n, "divergences": n } },
"ratio": n } (eventsPerSec and elapsedMs of the fastest run; ratio: fast ÷ xstate).
  --events N   events to generate and replay (default 1000000)
  --nodes N    fleet size (default 2000)
  --seed N     random seed (default 1)
  --interpreter both (default), fast or xstate`;

const int = (value: unknown, name: string, fallback: number, min: number) => intOption(value, name, fallback, min, USAGE);

/** What the benchmarks need from the command that runs them. */
export type BenchContext = {
  /** The built `fenceline` bin (the fleet bench runs its `up` as a child process). */
  fencelineBin: string;
};

export async function benchCommand(argv: string[], context: BenchContext): Promise<number> {
  if (argv[0] === "recovery") return (await import("./recovery.js")).benchRecovery(argv);
  if (argv[0] === "throughput") return (await import("./throughput.js")).benchThroughput(argv);
  if (argv[0] === "fleet") return (await import("./fleet.js")).benchFleet(argv, context);
  if (argv[0] === "restart") return (await import("./restart.js")).benchRestart(argv);
  if (argv[0] === "ownership") return (await import("./ownership.js")).benchOwnership(argv);
  const { values, positionals } = parse(
    argv,
    {
      events: { type: "string" },
      nodes: { type: "string" },
      seed: { type: "string" },
      interpreter: { type: "string" },
      json: { type: "boolean" },
    },
    USAGE,
  );
  if (values.help) return (console.log(USAGE), 0);
  if (positionals[0] !== "replay" || positionals.length > 1) throw new UsageError(`which benchmark? "replay" or "recovery"\n\n${USAGE}`);
  const events = int(values.events, "events", 1_000_000, 1);
  const nodes = int(values.nodes, "nodes", 2_000, 1);
  const seed = int(values.seed, "seed", 1, 0);
  const which = (values.interpreter as string | undefined) ?? "both";
  if (!["both", "fast", "xstate"].includes(which))
    throw new UsageError(`--interpreter must be both, fast or xstate, got "${which}"\n\n${USAGE}`);
  const interpreters: Interpreter[] = which === "both" ? ["xstate", "fast"] : [which as Interpreter];
  const r = benchReplay({ events, nodes, seed, interpreters });
  const byName = Object.fromEntries(r.runs.map((run) => [run.interpreter, run])) as Partial<Record<Interpreter, InterpreterRun>>;
  const best = r.runs.reduce((a, b) => (b.eventsPerSec > a.eventsPerSec ? b : a));
  const ratio = byName.fast && byName.xstate ? Math.round((100 * byName.fast.eventsPerSec) / byName.xstate.eventsPerSec) / 100 : null;
  const mix = Object.entries(r.eventTypes)
    .sort((a, b) => b[1] - a[1])
    .map(([type, n]) => `${type} ${((100 * n) / r.events).toFixed(1)}%`)
    .join(", ");
  humanOutput(values.json).write(
    `${table(
      [
        ["events replayed", String(r.events)],
        ["nodes", String(r.nodes)],
        ["transitions", String(r.transitions)],
        ["divergences", String(r.divergences)],
        ["history span", `${(r.spanMs / 3_600_000).toFixed(1)} h simulated`],
        ...r.runs.flatMap((run) => [
          [`${run.interpreter}: replay time`, `${run.elapsedMs} ms (one thread; ${INTERPRETER_NAMES[run.interpreter]})`],
          [`${run.interpreter}: events per second`, String(run.eventsPerSec)],
          [`${run.interpreter}: CPU time`, `${run.cpuMs} ms (all threads of the process, GC included)`],
          [`${run.interpreter}: divergences`, String(run.divergences)],
        ]),
        ...(ratio !== null ? [["fast ÷ xstate", `${ratio}×`]] : []),
        ["generation", `${r.generateMs} ms, not counted`],
        ["peak heap", `${r.heapUsedMb} MB`],
      ],
      ["REPLAY BENCHMARK", ""],
    )}\nevent mix: ${mix}\n`,
  );
  if (values.json) {
    const interpretersJson = Object.fromEntries(
      r.runs.map((run) => [
        run.interpreter,
        { eventsPerSec: run.eventsPerSec, elapsedMs: run.elapsedMs, cpuMs: run.cpuMs, divergences: run.divergences },
      ]),
    );
    printJson({ events: r.events, eventsPerSec: best.eventsPerSec, elapsedMs: best.elapsedMs, interpreters: interpretersJson, ratio });
  }
  return r.divergences === 0 ? 0 : 1;
}
