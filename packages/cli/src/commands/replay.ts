import type { NatsConnection } from "@nats-io/transport-node";
import { DEFAULT_POLICY, DEMO_POLICY, formatMs, nodeToken, type Policy } from "@fenceline/contracts";
import { connectNats } from "@fenceline/bus";
import { nodeTimeline, readAuditRecords, readEvents } from "@fenceline/read-model";
import {
  INTERPRETER_NAMES,
  createDecider,
  type Interpreter,
  replay,
  type Decider,
  type Divergence,
  type NodeStateAt,
  type ReplayReport,
  type TransitionDigest,
} from "@fenceline/engine";
import { parse, serverUrl, table, UsageError } from "@fenceline/command-line";
import { loadPolicy } from "../policy-file.js";

const USAGE = `usage: fenceline replay [--server nats://host:port] [--policy policy.json]
                        [--verify | --at TIME | --node NAME] [--interpreter xstate|fast] [--json]

Folds FL_EVENTS through the statechart from the first event and compares every transition with
the one recorded in FL_AUDIT. A difference is a determinism violation (the code or the policy
changed under recorded history): it is reported with the node, the event sequence and both
versions, and the exit status is 1.
  --verify       only check: the verdict and the divergences
  --at TIME      every node's state at TIME: ISO 8601, ms since the epoch, or now-5m (5 min ago)
  --node NAME    one node's history: events, transitions, commands and their results
  --policy FILE  the policy to replay with; by default the built-in one the audit names
                 (DEFAULT_POLICY "1", DEMO_POLICY "demo-1"); required for any other version
  --interpreter  how each event is folded: "xstate" (default), xstate's own transition(), the
                 reference; or "fast", the lean interpreter the live engine runs (several times
                 faster, but it checks the engine with the engine's own code). Both are printed.
  --json         one JSON document on stdout`;

/** Built-in policies, by version: replay picks one by the version the audit records carry. */
export const BUILTIN_POLICIES: Record<string, Policy> = { [DEFAULT_POLICY.version]: DEFAULT_POLICY, [DEMO_POLICY.version]: DEMO_POLICY };

export type PolicyChoice = { resolve: (recordedVersion: string | null) => Decider; describe: string };

/** How replay folds: xstate's own `transition()` (the reference) or the lean interpreter. */
export type ReplayInterpreter = Interpreter;
export const REPLAY_INTERPRETERS: readonly ReplayInterpreter[] = ["xstate", "fast"];
export const DEFAULT_REPLAY_INTERPRETER: ReplayInterpreter = "xstate";

export function parseInterpreter(value: unknown): ReplayInterpreter {
  if (value === undefined) return DEFAULT_REPLAY_INTERPRETER;
  if (REPLAY_INTERPRETERS.includes(value as ReplayInterpreter)) return value as ReplayInterpreter;
  throw new UsageError(`--interpreter must be ${REPLAY_INTERPRETERS.map((i) => `"${i}"`).join(" or ")}, got "${String(value)}"`);
}

/**
 * The policy replay runs with: --policy when given (for every record; a record written under
 * another version shows as a divergence), else the built-in policy the records name. Throws a
 * usage error naming the versions when a recorded one is not built in.
 */
export function choosePolicy(
  recordedVersions: string[],
  policyFile?: string,
  interpreter: ReplayInterpreter = DEFAULT_REPLAY_INTERPRETER,
): PolicyChoice {
  const decide = (policy: Policy) => createDecider(policy, undefined, { interpreter });
  if (policyFile) {
    const decider = decide(loadPolicy(policyFile));
    return { resolve: () => decider, describe: `${policyFile} (version "${decider.policy.version}")` };
  }
  const unknown = recordedVersions.filter((v) => !BUILTIN_POLICIES[v]);
  if (unknown.length > 0) {
    throw new UsageError(
      `the audit was written under policy version ${unknown.map((v) => `"${v}"`).join(", ")}, which is not built in (built in: ${Object.keys(
        BUILTIN_POLICIES,
      )
        .map((v) => `"${v}"`)
        .join(", ")}): pass the policy with --policy FILE`,
    );
  }
  const deciders = new Map(Object.entries(BUILTIN_POLICIES).map(([v, p]) => [v, decide(p)]));
  const fallback = deciders.get(recordedVersions[0] ?? DEFAULT_POLICY.version)!;
  return {
    resolve: (v) => (v !== null ? deciders.get(v) : undefined) ?? fallback,
    describe:
      recordedVersions.length > 0
        ? `built-in ${recordedVersions.map((v) => `"${v}"`).join(", ")}`
        : `built-in "${fallback.policy.version}"`,
  };
}

const DURATION = /^now-(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** ISO 8601, ms since the epoch, "now", or "now-<duration>" (now-90s, now-5m). */
export function parseTime(text: string, now = Date.now()): number {
  if (text === "now") return now;
  const rel = DURATION.exec(text);
  if (rel) return Math.round(now - Number(rel[1]) * UNIT[rel[2]!]!);
  if (/^\d+$/.test(text)) return Number(text);
  const t = Date.parse(text);
  if (Number.isNaN(t))
    throw new UsageError(`--at: "${text}" is not a time (ISO 8601 like 2026-01-02T03:04:05Z, ms since the epoch, now, or now-5m)`);
  return t;
}

export type ReplayRun = {
  report: ReplayReport;
  policy: string;
  /** The interpreter every event was folded with. */
  interpreter: ReplayInterpreter;
  events: number;
  records: number;
  elapsedMs: number;
};

/** Reads both streams and replays; audit first, so an event newer than the audit counts as pending. */
export async function replayFromNats(
  nc: NatsConnection,
  options: { policyFile?: string; at?: number; node?: string; maxDivergences?: number; interpreter?: ReplayInterpreter },
): Promise<ReplayRun> {
  const audit = await readAuditRecords(nc);
  const events = await readEvents(nc);
  const started = performance.now();
  const versions = [...new Set(audit.map((r) => r.policyVersion))];
  const policy = choosePolicy(versions, options.policyFile, options.interpreter);
  // The interpreter the deciders really run (a machine the lean one cannot interpret runs xstate).
  const used = new Set<ReplayInterpreter>();
  const resolve = (v: string | null) => {
    const decider = policy.resolve(v);
    used.add(decider.interpreter);
    return decider;
  };
  const report = replay(events, audit, {
    decider: resolve,
    ...(options.at !== undefined ? { at: options.at } : {}),
    ...(options.node !== undefined ? { node: options.node } : {}),
    ...(options.maxDivergences !== undefined ? { maxDivergences: options.maxDivergences } : {}),
  });
  const requested = options.interpreter ?? DEFAULT_REPLAY_INTERPRETER;
  const interpreter: ReplayInterpreter = used.size === 0 ? requested : used.has("xstate") ? "xstate" : "fast";
  return {
    report,
    policy: policy.describe,
    interpreter,
    events: events.length,
    records: audit.length,
    elapsedMs: performance.now() - started,
  };
}

const iso = (t: number | null | undefined) => (typeof t === "number" && Number.isFinite(t) ? new Date(t).toISOString() : "-");
const cut = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
const clock = (t: number) => new Date(t).toISOString().slice(11, 23);

function describe(d: TransitionDigest | null): string {
  if (!d) return "(none)";
  const cmds = d.commands.length > 0 ? d.commands.map((c) => `${c.kind} ${c.id}`).join(", ") : "no commands";
  const timers =
    Object.keys(d.timers.set).length > 0
      ? `; timers ${Object.entries(d.timers.set)
          .map(([k, v]) => `${k}@${v}`)
          .join(", ")}`
      : "";
  return `${d.from} → ${d.to}, epoch ${d.epoch}, ${cmds}${timers}${d.reason ? `; reason "${d.reason}"` : ""}`;
}

function formatDivergence(d: Divergence, more: number): string {
  const what =
    d.kind === "changed"
      ? `${d.fields.join(", ")} differ`
      : d.kind === "missing-record"
        ? "the audit has no record of this event"
        : "the audit has a record of an event that is not in FL_EVENTS (or is invalid there)";
  return [
    `DIVERGENCE  ${d.node}  event #${d.seq} (${d.eventType}, ${iso(d.at)}): ${what}`,
    `  recorded (policy ${d.recorded?.policyVersion ?? "-"}): ${describe(d.recorded)}`,
    `  replayed (policy ${d.replayed?.policyVersion ?? "-"}): ${describe(d.replayed)}`,
    ...(more > 0 ? [`  … and ${more} later divergence${more === 1 ? "" : "s"} on ${d.node}`] : []),
  ].join("\n");
}

function verdict(run: ReplayRun): string {
  const r = run.report;
  const head = `replayed ${r.events} events of ${r.nodes} nodes (${r.transitions} transitions) against ${run.records} audit records, policy ${run.policy}, interpreter ${run.interpreter} (${INTERPRETER_NAMES[run.interpreter]}), in ${formatMs(Math.round(run.elapsedMs))}`;
  const pending = r.pending > 0 ? `\n${r.pending} newer events are not applied by the engine yet (not compared)` : "";
  if (r.ok) return `${head}${pending}\nOK: every transition matches the audit`;
  const firsts = new Map<string, Divergence>();
  for (const d of r.divergences) if (!firsts.has(d.node)) firsts.set(d.node, d);
  const blocks = [...firsts.values()].map((d) => formatDivergence(d, (r.divergedNodes.find((n) => n.node === d.node)?.count ?? 1) - 1));
  const recorded = Object.keys(r.recordedPolicyVersions);
  const used = Object.keys(r.replayPolicyVersions);
  const mismatch = recorded.some((v) => !used.includes(v))
    ? `\npolicy mismatch: the audit was written under ${recorded.map((v) => `"${v}"`).join(", ")}, the replay used ${used.map((v) => `"${v}"`).join(", ")}`
    : "";
  return `${head}${pending}${mismatch}\n\n${blocks.join("\n\n")}\n\nDIVERGED: ${r.divergenceCount} divergence${r.divergenceCount === 1 ? "" : "s"} on ${r.divergedNodes.length} node${r.divergedNodes.length === 1 ? "" : "s"}: the code or the policy changed under recorded history`;
}

function statesTable(states: NodeStateAt[]): string {
  return table(
    states.map((s) => [
      s.node,
      s.state,
      iso(s.since),
      String(s.epoch),
      s.lastEvent ? `#${s.lastEvent.seq} ${s.lastEvent.type} ${iso(s.lastEvent.at)}` : "-",
    ]),
    ["NODE", "STATE", "SINCE", "EPOCH", "LAST EVENT"],
  );
}

export async function replayCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      server: { type: "string" },
      policy: { type: "string" },
      verify: { type: "boolean" },
      at: { type: "string" },
      node: { type: "string" },
      interpreter: { type: "string" },
      json: { type: "boolean" },
    },
    USAGE,
  );
  if (values.help) return (console.log(USAGE), 0);
  const modes = [values.verify, values.at, values.node].filter((v) => v !== undefined && v !== false);
  if (modes.length > 1) throw new UsageError(`--verify, --at and --node go one at a time\n\n${USAGE}`);
  const at = values.at !== undefined ? parseTime(values.at as string) : undefined;
  const node = values.node as string | undefined;
  if (node) nodeToken(node);
  const interpreter = parseInterpreter(values.interpreter);
  const url = serverUrl(values.server as string | undefined);
  const nc = await connectNats(url, { name: "fenceline-replay" });
  let run: ReplayRun;
  try {
    run = await replayFromNats(nc, {
      ...(values.policy ? { policyFile: values.policy as string } : {}),
      ...(at !== undefined ? { at } : {}),
      ...(node ? { node } : {}),
      interpreter,
    });
  } finally {
    await nc.close();
  }
  const r = run.report;
  const summary = {
    ok: r.ok,
    events: r.events,
    compared: r.compared,
    pending: r.pending,
    nodes: r.nodes,
    transitions: r.transitions,
    policy: run.policy,
    interpreter: run.interpreter,
    recordedPolicyVersions: r.recordedPolicyVersions,
    replayPolicyVersions: r.replayPolicyVersions,
    divergenceCount: r.divergenceCount,
    divergedNodes: r.divergedNodes,
    divergences: r.divergences,
    elapsedMs: Math.round(run.elapsedMs),
  };
  const code = r.ok ? 0 : 1;

  if (node) {
    const h = r.history ?? { records: [], results: [] };
    if (h.records.length === 0) {
      if (values.json) process.stdout.write(`${JSON.stringify({ ...summary, node, timeline: null })}\n`);
      else console.error(`fenceline replay: no events for node "${node}"`);
      return r.ok ? 1 : code;
    }
    const timeline = nodeTimeline(node, h.records, h.results);
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ ...summary, node, timeline })}\n`);
      return code;
    }
    console.log(
      `${node}: ${timeline.entries.length} events, ${timeline.transitions} transitions (replayed with ${INTERPRETER_NAMES[run.interpreter]})\n`,
    );
    console.log(
      table(
        timeline.entries.map((e) => [
          clock(e.at),
          `#${e.seq}`,
          e.event.type + (e.resultOf ? ` (${e.resultOf})` : ""),
          e.changed ? `${e.from} → ${e.to}` : `(${e.to})`,
          e.commands
            .map(
              (c) =>
                `${c.kind}${c.result ? (c.result.ok ? ` ✓ ${c.result.latencyMs}ms` : ` ✗ ${cut(c.result.reason ?? "failed", 48)}`) : " …"}`,
            )
            .join(", "),
          cut(e.reason ?? "", 110),
        ]),
        ["TIME", "SEQ", "EVENT", "STATE", "COMMANDS (RESULT)", "REASON"],
      ),
    );
    console.log(
      `\ntime in each state:\n${table(
        timeline.stays.map((s) => [s.state, clock(s.enteredAt), s.leftAt === null ? "(now)" : clock(s.leftAt), formatMs(s.durationMs)]),
        ["STATE", "ENTERED", "LEFT", "FOR"],
      )}`,
    );
    if (!r.ok) console.log(`\n${verdict(run)}`);
    return code;
  }

  if (at !== undefined) {
    const states = r.statesAt ?? [];
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ ...summary, at, atIso: iso(at), nodes: states })}\n`);
      return code;
    }
    console.log(`fleet at ${iso(at)} (replayed with ${INTERPRETER_NAMES[run.interpreter]}):\n${statesTable(states)}`);
    if (!r.ok) console.log(`\n${verdict(run)}`);
    return code;
  }

  if (values.json) {
    process.stdout.write(`${JSON.stringify(values.verify ? summary : { ...summary, final: r.final })}\n`);
    return code;
  }
  if (!values.verify && r.final.length > 0) console.log(`${statesTable(r.final)}\n`);
  console.log(verdict(run));
  return code;
}
