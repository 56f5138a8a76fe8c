import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, ROOT, oneJsonDocument, runCli } from "./cli.js";

describe("a held demo, reached with the client commands", () => {
  const dir = mkdtempSync(join(tmpdir(), "fenceline-hold-"));
  const endpoints = join(dir, "endpoints.json");
  let demo: ReturnType<typeof spawn>;
  let exit: Promise<number | null>;
  let nats = "";

  beforeAll(async () => {
    demo = spawn(process.execPath, [CLI, "demo", "--hold", "--endpoints", endpoints, "--scenario", "crash", "--nodes", "5"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    exit = new Promise((resolve) => demo.on("close", resolve));
    const until = Date.now() + 45_000;
    while (!existsSync(endpoints)) {
      if (Date.now() > until) throw new Error("the demo wrote no endpoints file");
      await new Promise((r) => setTimeout(r, 200));
    }
    nats = (JSON.parse(readFileSync(endpoints, "utf8")) as { nats: string }).nats;
  }, 60_000);

  afterAll(async () => {
    demo.kill("SIGINT");
    expect(await exit).toBe(0);
  });

  it("writes the NATS address to the endpoints file", () => {
    expect(nats).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
  });

  it("nodes --json lists every node, all healthy after the fault", async () => {
    const r = await runCli(["nodes", "--json", "--server", nats]);
    expect(r.code, r.stderr).toBe(0);
    const nodes = oneJsonDocument<Array<{ node: string; state: string; epoch: number }>>(r);
    expect(nodes.map((n) => n.node)).toEqual(["node-1", "node-2", "node-3", "node-4", "node-5"]);
    expect(nodes.every((n) => n.state === "healthy")).toBe(true);
    expect(nodes.some((n) => n.epoch === 1)).toBe(true);
  });

  it("audit --node shows the crashed node's whole lifecycle", async () => {
    const crashed = (
      JSON.parse((await runCli(["nodes", "--json"], { env: { NATS_URL: nats } })).stdout) as Array<{ node: string; epoch: number }>
    ).find((n) => n.epoch === 1)!.node;
    const r = await runCli(["audit", "--node", crashed, "--changes"], { env: { NATS_URL: nats } });
    expect(r.code, r.stderr).toBe(0);
    for (const step of ["healthy → suspect", "→ fencing", "fencing → remediating", "→ rejoining", "→ healthy"])
      expect(r.stdout).toContain(step);
  });

  it("audit --export prints one self-describing JSON record per line", async () => {
    const r = await runCli(["audit", "--export", "--server", nats]);
    const records = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { v: number; node: string; seq: number; from: string; to: string });
    expect(records.length).toBeGreaterThan(5);
    expect(records.every((x) => x.v === 1 && typeof x.seq === "number" && x.node && x.to)).toBe(true);
  });

  it("audit --json prints one JSON document: the array of records; with --follow it refuses", async () => {
    const r = await runCli(["audit", "--json", "--changes", "--server", nats]);
    expect(r.code, r.stderr).toBe(0);
    const records = oneJsonDocument<Array<{ v: number; changed: boolean; to: string }>>(r);
    expect(records.length).toBeGreaterThan(5);
    expect(records.every((x) => x.v === 1 && x.changed)).toBe(true);
    const follow = await runCli(["audit", "--json", "--follow", "--server", nats]);
    expect(follow.code).toBe(2);
    expect(follow.stderr).toContain("--export --follow");
  });

  it("replay --json, --verify --json, --at --json and --node --json each print one JSON document", async () => {
    for (const mode of [[], ["--verify"], ["--at", new Date().toISOString()], ["--node", "node-1"]]) {
      const r = await runCli(["replay", ...mode, "--json", "--server", nats]);
      expect(r.code, `${mode.join(" ")}: ${r.stderr}`).toBe(0);
      expect(oneJsonDocument<{ ok: boolean }>(r).ok, mode.join(" ")).toBe(true);
    }
  });

  it("client commands without a server say how to give one", async () => {
    const r = await runCli(["nodes"], { env: { NATS_URL: "" } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("--server");
  });
});

describe("fenceline statechart --json", () => {
  it("exports every state and transition", async () => {
    const r = await runCli(["statechart", "--json"]);
    expect(r.code).toBe(0);
    const chart = oneJsonDocument<{ states: Array<{ path: string }>; transitions: Array<{ event: string }> }>(r);
    const top = chart.states.map((s) => s.path).filter((p) => !p.includes("."));
    for (const s of ["healthy", "suspect", "fencing", "remediating", "rejoining", "paused", "operator"]) expect(top).toContain(s);
    expect(chart.transitions.length).toBeGreaterThan(40);
  });
});
