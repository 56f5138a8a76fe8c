import { parseArgs, type ParseArgsConfig } from "node:util";
import { ErrorCode, FencelineError } from "@fenceline/contracts";

export type Options = NonNullable<ParseArgsConfig["options"]>;

type ParseConfig<O extends Options> = {
  args: string[];
  options: O & { help: { type: "boolean"; short: string } };
  allowPositionals: true;
  strict: true;
};
/** What `parse` returns for a command's flags `O` (named, so that declarations can name it). */
export type Parsed<O extends Options> = ReturnType<typeof parseArgs<ParseConfig<O>>>;

/** Parses a command's flags; an unknown flag is a usage error with the command's help. */
export function parse<O extends Options>(argv: string[], options: O, usage: string): Parsed<O> {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${usage}`);
  }
}

/**
 * The flags of `fenceline bench <name>` (`argv` may start with the name): the parsed values, or
 * null once `usage` is printed for --help. A positional argument is a usage error.
 */
export function parseBench<O extends Options>(argv: string[], name: string, options: O, usage: string): Parsed<O>["values"] | null {
  const { values, positionals } = parse(argv[0] === name ? argv.slice(1) : argv, options, usage);
  if ((values as { help?: boolean }).help) {
    console.log(usage);
    return null;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}\n\n${usage}`);
  return values;
}

export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** An integer flag: `fallback` when absent, a usage error (with `usage`) when not an integer ≥ `min`. */
export function intOption(value: unknown, name: string, fallback: number, min: number, usage: string): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}\n\n${usage}`);
  return n;
}

/** The NATS server a client command talks to: --server, then NATS_URL. */
export function serverUrl(flag: string | undefined): string {
  const url = flag ?? process.env.NATS_URL;
  if (!url) {
    throw new FencelineError(
      ErrorCode.NatsUnavailable,
      "no NATS server given: pass --server nats://host:port or set NATS_URL (`fenceline demo --hold --endpoints file` writes one)",
    );
  }
  return url;
}

export function table(rows: string[][], header: string[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  return all
    .map((r) =>
      r
        .map((cell, i) => (cell ?? "").padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/**
 * Where a command writes what it prints for people (tables, summaries): stdout, or stderr when
 * `--json` reserves stdout for exactly one JSON document.
 */
export const humanOutput = (json: unknown): NodeJS.WritableStream => (json ? process.stderr : process.stdout);

/** The one JSON document a `--json` command prints on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}
