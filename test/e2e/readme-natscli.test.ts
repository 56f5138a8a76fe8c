import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MIN_NATS_SERVER_VERSION, ensureBinary } from "@fenceline/toolchain";
import { partitionOf } from "@fenceline/streams";
import { CLI, ROOT } from "./cli.js";

/**
 * Every `nats …` line in the README's shell blocks, run as written (through `sh -c`, so quoting
 * and natscli's templates are the user's) with the built natscli, in README order, against a
 * held demo. The examples come from the README itself, so the two cannot drift apart: a new
 * example runs here without anyone adding it. Where the test knows what an example is for, it
 * also checks the answer (`CHECKS`); every example must exit 0.
 */
const README = readFileSync(join(ROOT, "README.md"), "utf8");

function natsExamples(markdown: string): string[] {
  const out: string[] = [];
  for (const block of markdown.matchAll(/^```(?:sh|bash|shell)\b[^\n]*\n([\s\S]*?)^```/gm)) {
    for (const line of block[1]!.split("\n")) if (/^nats\s/.test(line.trim())) out.push(line.trim());
  }
  return out;
}

type Run = { code: number | null; stdout: string; stderr: string };
const run = (line: string, env: NodeJS.ProcessEnv): Promise<Run> =>
  new Promise((resolve) => {
    const child = spawn("sh", ["-c", line], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });

/** What an example is for, by its start: the answer must say so (retried while the system catches up). */
const CHECKS: Array<{ starts: string; check: (r: Run) => boolean }> = [
  {
    starts: "nats stream info FL_EVENTS",
    check: (r) =>
      r.stdout.includes("Subjects: fl.evt.*") &&
      r.stdout.includes("Subject Transform: fl.evt.* to fl.evt.{{partition(16,1)}}.{{wildcard(1)}}"),
  },
  { starts: "nats req fl.state.node-3", check: (r) => /"state":"paused"/.test(r.stdout) },
  { starts: "nats pub --jetstream fl.evt.node-3", check: (r) => /Stored in Stream: FL_EVENTS Sequence: \d+/.test(r.stdout + r.stderr) },
  { starts: "nats stream subjects FL_EVENTS", check: (r) => r.stdout.includes(`fl.evt.${partitionOf("node-3", 16)}.node-3`) },
  { starts: "nats consumer info FL_EVENTS engine-0", check: (r) => r.stdout.includes("Filter Subject: fl.evt.0.*") },
  { starts: "nats kv get FL_NODES node-3", check: (r) => (JSON.parse(r.stdout) as { node?: string }).node === "node-3" },
  { starts: "nats stream get FL_DLQ", check: (r) => r.stdout.includes("fl.evt.7.node-3 is a per-partition subject") },
];

describe("the README's natscli examples, as written, against a held demo", () => {
  const dir = mkdtempSync(join(tmpdir(), "fenceline-readme-"));
  const endpoints = join(dir, "endpoints.json");
  let demo: ChildProcess;
  let exit: Promise<number | null>;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    const nats = await ensureBinary("nats");
    demo = spawn(process.execPath, [CLI, "demo", "--hold", "--endpoints", endpoints, "--scenario", "crash", "--nodes", "5"], {
      cwd: ROOT,
      stdio: ["ignore", "ignore", "pipe"],
    });
    exit = new Promise((resolve) => demo.on("close", resolve));
    const until = Date.now() + 45_000;
    while (!existsSync(endpoints)) {
      if (Date.now() > until) throw new Error("the demo wrote no endpoints file");
      await new Promise((r) => setTimeout(r, 200));
    }
    const home = join(dir, "home");
    mkdirSync(home);
    // A home of its own: no natscli context of whoever runs the tests.
    env = {
      PATH: `${dirname(nats)}:${process.env.PATH}`,
      HOME: home,
      NATS_URL: (JSON.parse(readFileSync(endpoints, "utf8")) as { nats: string }).nats,
    };
  }, 60_000);

  afterAll(async () => {
    demo?.kill("SIGINT");
    expect(await exit).toBe(0);
  });

  it("the README states the minimum nats-server Fenceline checks for", () => {
    expect(README).toContain(`Fenceline needs ≥ ${MIN_NATS_SERVER_VERSION}`);
  });

  it("every example runs and answers what the README says", { timeout: 120_000 }, async () => {
    const examples = natsExamples(README);
    expect(examples.length).toBeGreaterThanOrEqual(CHECKS.length + 3);
    let subscriber: { child: ChildProcess; output: () => string } | undefined;
    for (const line of examples) {
      if (line.startsWith("nats sub ")) {
        // Runs until stopped: watched while the examples after it run.
        const child = spawn("sh", ["-c", line], { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
        let output = "";
        child.stdout!.on("data", (d) => (output += d));
        child.stderr!.on("data", (d) => (output += d));
        await expect.poll(() => output, { timeout: 10_000 }).toContain("Subscribing on fl.audit.>");
        subscriber = { child, output: () => output };
        continue;
      }
      const check = CHECKS.find((c) => line.startsWith(c.starts))?.check ?? (() => true);
      const passes = (r: Run) => {
        try {
          return r.code === 0 && check(r);
        } catch {
          return false;
        }
      };
      let last = await run(line, env);
      for (const deadline = Date.now() + 15_000; !passes(last) && Date.now() < deadline; last = await run(line, env)) {
        await new Promise((r) => setTimeout(r, 300));
      }
      expect({ line, code: last.code, answers: passes(last) }, `${line}\n${last.stdout}\n${last.stderr}`).toEqual({
        line,
        code: 0,
        answers: true,
      });
    }
    // The subscriber saw the pause and the resume being applied.
    expect(subscriber, "the README subscribes to fl.audit.>").toBeDefined();
    await expect
      .poll(() => subscriber!.output(), { timeout: 10_000 })
      .toMatch(/"from":"healthy","to":"paused"[\s\S]*"from":"paused","to":"healthy"/);
    process.kill(-subscriber!.child.pid!, "SIGTERM");
  });
});
