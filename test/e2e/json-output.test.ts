import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { oneJsonDocument, ROOT, runCli } from "./cli.js";

/**
 * `--json` means exactly one JSON document on stdout, for every command that takes it; what is
 * for people (tables, progress) goes to stderr. The commands are found from the CLI's own help,
 * so a new command with `--json` cannot be missed: each is run here, or by the test named for it
 * (with the same `oneJsonDocument` check), which this test reads to make sure.
 */
const CHECKED_ELSEWHERE: Record<string, { file: string; needle: string }> = {
  demo: { file: "test/e2e/demo.test.ts", needle: '["demo", "--json"' },
  "fence-check": { file: "test/fencing/fence-check.test.ts", needle: '["fence-check", "--fence-devices", file, "--json"' },
  nodes: { file: "test/e2e/hold.test.ts", needle: '["nodes", "--json"' },
  audit: { file: "test/e2e/hold.test.ts", needle: '["audit", "--json"' },
  replay: { file: "test/e2e/hold.test.ts", needle: '["replay", ...mode, "--json"' },
  statechart: { file: "test/e2e/hold.test.ts", needle: '["statechart", "--json"]' },
  "bench throughput": { file: "test/scale/benches.test.ts", needle: 'bench(["throughput"' },
  "bench fleet": { file: "test/scale/benches.test.ts", needle: 'bench(["fleet"' },
  "bench restart": { file: "test/scale/benches.test.ts", needle: 'bench(["restart"' },
  "bench ownership": { file: "test/scale/benches.test.ts", needle: 'bench(["ownership"' },
};

const RUN_HERE: Record<string, string[]> = {
  chaos: ["chaos", "--seeds", "2", "--json"],
  "bench replay": ["bench", "replay", "--events", "2000", "--nodes", "50", "--json"],
  "bench recovery": ["bench", "recovery", "--cases", "4", "--json"],
};

/** Every command and bench the CLI lists in its help. */
async function commands(): Promise<string[]> {
  const top = (await runCli(["--help"])).stdout;
  const names = new Set<string>();
  for (const line of top.split("\n")) {
    const m = /^ {2}([a-z|-]+)(?: [a-z]+)?\s{2,}/.exec(line);
    if (m) for (const n of m[1]!.split("|")) if (n !== "bench") names.add(n);
  }
  const bench = (await runCli(["bench", "--help"])).stdout;
  for (const m of bench.matchAll(/fenceline bench ([a-z|]+)/g)) for (const n of m[1]!.split("|")) names.add(`bench ${n}`);
  return [...names];
}

describe("--json: one JSON document on stdout", () => {
  it("every command whose help offers --json is checked", async () => {
    const all = await commands();
    expect(all).toEqual(expect.arrayContaining(["demo", "up", "nodes", "audit", "chaos", "bench replay", "bench fleet"]));
    const helps = await Promise.all(all.map(async (name) => ({ name, help: (await runCli([...name.split(" "), "--help"])).stdout })));
    const withJson = helps.filter((h) => /--json/.test(h.help)).map((h) => h.name);
    expect(withJson.length).toBeGreaterThan(8);
    for (const name of withJson) {
      const elsewhere = CHECKED_ELSEWHERE[name];
      expect(elsewhere !== undefined || RUN_HERE[name] !== undefined, `${name} takes --json but no test checks it`).toBe(true);
      if (elsewhere) {
        const source = readFileSync(join(ROOT, elsewhere.file), "utf8");
        expect(source, `${elsewhere.file} runs ${name} --json`).toContain(elsewhere.needle);
        expect(source).toContain("oneJsonDocument");
      }
    }
  }, 60_000);

  for (const [name, args] of Object.entries(RUN_HERE)) {
    it(`${name}: the JSON document on stdout, the table for people on stderr`, async () => {
      const r = await runCli(args, { timeoutMs: 120_000, env: { FENCELINE_LOG_LEVEL: "warn" } });
      expect(r.code, r.stderr.slice(-2000)).toBe(0);
      expect(typeof oneJsonDocument<object>(r)).toBe("object");
      if (name.startsWith("bench")) expect(r.stderr.trim().length).toBeGreaterThan(0);
    }, 120_000);
  }

  it("chaos --seed S --json: one document with the seed's result", async () => {
    const r = await runCli(["chaos", "--seed", "3", "--json"], { timeoutMs: 120_000 });
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    expect(oneJsonDocument<{ seeds: number }>(r).seeds).toBe(1);
  }, 120_000);
});
