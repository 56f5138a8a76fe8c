import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, ROOT, oneJsonDocument, runCli } from "./cli.js";

const run = promisify(execFile);

type Fault = {
  node: string;
  kind: string;
  fencedBy: string | null;
  fencedAfterMs: number | null;
  workloadsRecoveredAfterMs: number | null;
  rejoinedAfterMs: number | null;
  finalState: string;
  reprovisioned: boolean;
  selfFenced: boolean;
};

describe("fenceline demo --scenario power-fence", () => {
  it("a hung node with a broken watchdog is powered off through its BMC (fencedBy power), its workloads move, it is powered on and rejoins", async () => {
    const r = await runCli(["demo", "--scenario", "power-fence", "--nodes", "5", "--json"]);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const s = oneJsonDocument<{ faults: Fault[]; invariantViolations: unknown[] }>(r);
    expect(s.invariantViolations).toEqual([]);
    const [hang] = s.faults;
    expect(hang).toMatchObject({ kind: "hang", fencedBy: "power", finalState: "healthy", reprovisioned: true, selfFenced: false });
    expect(hang!.workloadsRecoveredAfterMs!).toBeGreaterThanOrEqual(hang!.fencedAfterMs!);
    expect(hang!.rejoinedAfterMs!).toBeGreaterThan(hang!.workloadsRecoveredAfterMs!);
    expect(r.stderr).toContain("[machine] powered off by its BMC");
    expect(r.stderr).toContain("[machine] powered on by its BMC");
    // The rebooted machine's kubelet is held by the boot gate until the engine lets it in. Whether
    // the gate's first answer saw "down" or "rejoining", and whether its opening is printed before
    // the demo ends (the engine may finish the rejoin between two polls), depends on timing.
    const held = r.stderr.indexOf("the boot gate holds its kubelet");
    expect(held, r.stderr.slice(-3000)).toBeGreaterThanOrEqual(0);
    const open = r.stderr.indexOf("boot gate open: the engine says ");
    if (open >= 0) expect(open).toBeGreaterThan(held);
  }, 120_000);
});

describe("a held power-fence demo: each machine's BMC answers ipmitool", () => {
  const dir = mkdtempSync(join(tmpdir(), "fenceline-power-hold-"));
  const endpoints = join(dir, "endpoints.json");
  let demo: ReturnType<typeof spawn>;
  let exit: Promise<number | null>;
  let bmc: Record<string, { host: string; port: number; user: string; passwordFile: string }> = {};

  beforeAll(async () => {
    demo = spawn(process.execPath, [CLI, "demo", "--hold", "--endpoints", endpoints, "--scenario", "power-fence", "--nodes", "5"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    exit = new Promise((resolve) => demo.on("close", resolve));
    const until = Date.now() + 60_000;
    while (!existsSync(endpoints)) {
      if (Date.now() > until) throw new Error("the demo wrote no endpoints file");
      await new Promise((r) => setTimeout(r, 200));
    }
    bmc = (JSON.parse(readFileSync(endpoints, "utf8")) as { bmc: typeof bmc }).bmc;
  }, 90_000);

  afterAll(async () => {
    demo.kill("SIGINT");
    expect(await exit).toBe(0);
    rmSync(dir, { recursive: true, force: true });
  });

  it("lists a BMC per node in the endpoints file", () => {
    expect(Object.keys(bmc).sort()).toEqual(["node-1", "node-2", "node-3", "node-4", "node-5"]);
    for (const b of Object.values(bmc))
      expect(b).toMatchObject({ host: "127.0.0.1", port: expect.any(Number), user: "admin", passwordFile: expect.any(String) });
  });

  it("ipmitool -I lanplus reads every machine's power state (all on again after the fault)", async () => {
    for (const [node, b] of Object.entries(bmc)) {
      const { stdout } = await run("ipmitool", [
        "-I",
        "lanplus",
        "-C",
        "3",
        "-H",
        b.host,
        "-p",
        String(b.port),
        "-U",
        b.user,
        "-f",
        b.passwordFile,
        "chassis",
        "power",
        "status",
      ]);
      expect(stdout.trim(), node).toBe("Chassis Power is on");
    }
  });
});
