import {
  BROKEN_MACHINE_NAMES,
  BROKEN_MACHINES,
  FAULT_KINDS,
  formatTrail,
  isBrokenMachineName,
  labAgentConfigs,
  runSeed,
  runSeeds,
  type BrokenMachineName,
  type CompactResult,
  type LabFaultKind,
  type SeedOptions,
} from "@fenceline/sim";
import { readFileSync } from "node:fs";
import { parse, table, UsageError } from "@fenceline/command-line";
import { loadPolicy } from "../policy-file.js";

const USAGE = `usage: fenceline chaos [--seeds N] [--from S] [--jobs J] [--json] [--broken NAME] [--kinds K,K] [--agent-config FILE] [--policy FILE]
       fenceline chaos --seed S [--node NODE] [--json] [--broken NAME] [--agent-config FILE] [--policy FILE]

The chaos lab: the real engine, detector, actuators and agents on in-memory adapters and one
virtual clock, a whole fleet per seed with faults mixed at random, every invariant checked after
every clock step. The same seed replays the same run, byte for byte. Exits 1 on any violation.
  --seeds N       how many seeds (default 1000), starting at --from (default 1)
  --jobs J        worker threads (default 2)
  --seed S        replay one seed and print the audit trail of the node concerned
  --node NODE     with --seed: the trail of this node instead
  --json          one JSON line on stdout
  --broken NAME   run a deliberately broken machine (the lab's self-test): ${BROKEN_MACHINE_NAMES.join(", ")}
  --kinds K,K     only these fault kinds: ${FAULT_KINDS.join(", ")}
  --agent-config FILE  every machine's agent runs this configuration file, with __NODE_NAME__
                  and __NODE_IP__ filled in per machine, as the DaemonSet does (default: the lab's
                  copy of deploy/agent.json with the lab policy's timing)
  --policy FILE   the engine's policy (default: the lab's short timings); run deploy/ as shipped
                  with --agent-config deploy/agent.json --policy deploy/policy.json`;

type FailureLine = { seed: number; invariant: string; node?: string; atMs: number; detail: string; replay: string };

/** The flags that shape every seed of a run (they are part of its replay command). */
type RunFlags = {
  broken: BrokenMachineName | undefined;
  kinds: string | undefined;
  agentConfig: string | undefined;
  policy: string | undefined;
};

function replayCommand(seed: number, flags: RunFlags): string {
  const { broken, kinds, agentConfig, policy } = flags;
  return `npm run -s fenceline -- chaos --seed ${seed}${broken ? ` --broken ${broken}` : ""}${kinds ? ` --kinds ${kinds}` : ""}${agentConfig ? ` --agent-config ${agentConfig}` : ""}${policy ? ` --policy ${policy}` : ""}`;
}

/** One line per seed and invariant: the first violation of that invariant in that seed. */
function failureLines(results: readonly CompactResult[], flags: RunFlags): FailureLine[] {
  const out: FailureLine[] = [];
  for (const r of results) {
    const seen = new Set<string>();
    for (const f of r.failures) {
      if (seen.has(f.invariant)) continue;
      seen.add(f.invariant);
      out.push({
        seed: r.seed,
        invariant: f.invariant,
        ...(f.node ? { node: f.node } : {}),
        atMs: f.at,
        detail: f.detail,
        replay: replayCommand(r.seed, flags),
      });
    }
  }
  return out;
}

function positiveInt(value: unknown, flag: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${flag} must be an integer >= ${min}, got "${String(value)}"`);
  return n;
}

/**
 * An agent configuration file for every lab machine: read, and checked by rendering it for one
 * machine and parsing it as `fenceline agent` would, so a bad file is one clear error up front.
 */
function readAgentConfig(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read --agent-config ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    labAgentConfigs(text)("node-1");
  } catch (err) {
    throw new UsageError(`--agent-config ${path}: ${(err as Error).message}`);
  }
  return text;
}

export async function chaosCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      seeds: { type: "string" },
      from: { type: "string" },
      seed: { type: "string" },
      jobs: { type: "string" },
      json: { type: "boolean" },
      broken: { type: "string" },
      kinds: { type: "string" },
      node: { type: "string" },
      "agent-config": { type: "string" },
      policy: { type: "string" },
    },
    USAGE,
  );
  if (values.help) return (console.log(USAGE), 0);
  const json = Boolean(values.json);
  const brokenName = values.broken as string | undefined;
  if (brokenName !== undefined && !isBrokenMachineName(brokenName)) {
    throw new UsageError(`unknown broken machine "${brokenName}"; known: ${BROKEN_MACHINE_NAMES.join(", ")}`);
  }
  const broken = brokenName as BrokenMachineName | undefined;
  const kindsFlag = values.kinds as string | undefined;
  let kinds: LabFaultKind[] | undefined;
  if (kindsFlag !== undefined) {
    kinds = kindsFlag.split(",").map((k) => k.trim()) as LabFaultKind[];
    const unknown = kinds.filter((k) => !(FAULT_KINDS as readonly string[]).includes(k));
    if (unknown.length > 0 || kinds.length === 0)
      throw new UsageError(`unknown fault kind(s) ${unknown.join(", ")}; known: ${FAULT_KINDS.join(", ")}`);
  }
  const agentConfigFile = values["agent-config"] as string | undefined;
  const policyFile = values.policy as string | undefined;
  const agentConfig = agentConfigFile === undefined ? undefined : readAgentConfig(agentConfigFile);
  const policy = policyFile === undefined ? undefined : loadPolicy(policyFile);
  const flags: RunFlags = { broken, kinds: kindsFlag, agentConfig: agentConfigFile, policy: policyFile };
  const options: SeedOptions = {
    ...(broken ? { broken } : {}),
    ...(kinds ? { kinds } : {}),
    ...(agentConfig ? { agentConfig } : {}),
    ...(policy ? { policy } : {}),
  };
  const started = Date.now();

  const single = positiveInt(values.seed, "--seed", 0);
  if (single !== undefined)
    return replaySeed(single, { ...options, keep: true }, { json, flags, node: values.node as string | undefined, started });

  const count = positiveInt(values.seeds, "--seeds") ?? 1000;
  const from = positiveInt(values.from, "--from", 0) ?? 1;
  const jobs = positiveInt(values.jobs, "--jobs") ?? 2;
  const seeds = Array.from({ length: count }, (_, i) => from + i);
  let done = 0;
  const results = await runSeeds({
    seeds,
    jobs,
    options,
    onResult: (r) => {
      done += 1;
      if (!r.ok) {
        const f = r.failures[0]!;
        process.stderr.write(
          `seed ${r.seed}: ${f.invariant}${f.node ? ` on ${f.node}` : ""} at ${(f.at / 1000).toFixed(3)}s — ${f.detail}\n  replay: ${replayCommand(r.seed, flags)}\n`,
        );
      } else if (process.stderr.isTTY && done % 50 === 0) {
        process.stderr.write(`${done}/${count} seeds\n`);
      }
    },
  });
  const elapsedMs = Date.now() - started;
  const failures = failureLines(results, flags);
  const faultsInjected = results.reduce((sum, r) => sum + r.faultsInjected, 0);
  const failedSeeds = results.filter((r) => !r.ok).length;
  const powerSeeds = results.filter((r) => r.power).length;
  const bmcFaults = results.reduce((sum, r) => sum + r.faults.filter((f) => f.kind.startsWith("bmc-")).length, 0);

  if (json) {
    process.stdout.write(
      `${JSON.stringify({ seeds: count, from, ...(broken ? { broken } : {}), failures, faultsInjected, powerSeeds, bmcFaults, elapsedMs })}\n`,
    );
  } else {
    const virtualMs = results.reduce((sum, r) => sum + r.virtualMs, 0);
    const byInvariant = new Map<string, number>();
    for (const f of failures) byInvariant.set(f.invariant, (byInvariant.get(f.invariant) ?? 0) + 1);
    console.log(
      `${count} seeds (${from}..${from + count - 1})${broken ? ` with the broken machine "${broken}"` : ""}: ${faultsInjected} faults injected, ${(virtualMs / 3_600_000).toFixed(1)} h of virtual time in ${(elapsedMs / 1000).toFixed(1)} s (${((count * 1000) / elapsedMs).toFixed(1)} seeds/s, ${jobs} jobs)`,
    );
    console.log(`${powerSeeds} seeds fenced by power (simulated BMCs, [ipmi] then [watchdog]), with ${bmcFaults} BMC faults`);
    if (failures.length === 0) {
      console.log("invariants: all held on every seed");
    } else {
      console.log(`\n${failedSeeds} seed(s) failed:\n`);
      console.log(
        table(
          failures.map((f) => [String(f.seed), f.invariant, f.node ?? "-", `${(f.atMs / 1000).toFixed(3)}s`, f.replay]),
          ["SEED", "INVARIANT", "NODE", "AT", "REPLAY"],
        ),
      );
      console.log(`\n${[...byInvariant].map(([k, v]) => `${k}: ${v}`).join(", ")}`);
    }
  }
  return failures.length === 0 ? 0 : 1;
}

async function replaySeed(
  seed: number,
  options: SeedOptions,
  how: { json: boolean; flags: RunFlags; node: string | undefined; started: number },
): Promise<number> {
  const r = await runSeed(seed, options);
  const node = how.node ?? r.failures[0]?.node;
  const trail = formatTrail(r.trail ?? [], node);
  const failures = failureLines([r], how.flags);
  if (how.json) {
    const { audit, trail: lines, ...rest } = r;
    const nodeAudit = node ? (audit ?? []).filter((a) => a.node === node) : [];
    process.stdout.write(
      `${JSON.stringify({ seeds: 1, failures, faultsInjected: r.faultsInjected, elapsedMs: Date.now() - how.started, result: rest, ...(node ? { node, audit: nodeAudit, trail: (lines ?? []).filter((l) => l.node === node || l.node === "*") } : {}) })}\n`,
    );
    return r.ok ? 0 : 1;
  }
  const broken = how.flags.broken;
  console.log(
    `seed ${seed}${broken ? ` (broken machine "${broken}": ${BROKEN_MACHINES[broken].description})` : ""}: ${r.nodes.length} nodes, ${r.faultsInjected} faults, ${r.events} events, ${(r.virtualMs / 1000).toFixed(1)} s of virtual time`,
  );
  console.log(
    `convergence bound after the last fault healed at ${(r.lastHealAtMs / 1000).toFixed(1)} s: ${r.bound.explanation} = ${(r.bound.totalMs / 1000).toFixed(1)} s`,
  );
  console.log(`audit digest ${r.digest}\n\nfaults:`);
  for (const f of r.faults) console.log(`  #${f.id} ${(f.at / 1000).toFixed(3)}s ${f.kind}: ${f.detail}`);
  if (r.ok) {
    console.log(
      `\ninvariants: all held; every node converged at ${r.convergedAtMs === null ? "-" : `${(r.convergedAtMs / 1000).toFixed(1)} s`}${r.operator.length > 0 ? `; operator: ${r.operator.map((o) => `${o.node} (${o.reason})`).join(", ")}` : ""}`,
    );
  } else {
    console.log("\nVIOLATIONS:");
    for (const f of r.failures) console.log(`  ${(f.at / 1000).toFixed(3)}s ${f.invariant}${f.node ? ` on ${f.node}` : ""}: ${f.detail}`);
  }
  console.log(`\ntrail${node ? ` of ${node}` : ""} (audit records, machine events, faults, cluster changes):\n${trail}`);
  if (!r.ok) console.log(`\nreplay: ${replayCommand(seed, how.flags)}`);
  return r.ok ? 0 : 1;
}
