import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..", "..");
const INDEX = join(ROOT, "packages", "kube-lab", "src", "index.ts");
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, "utf8").split(" ")[2]!.startsWith("Z");
  } catch {
    return false;
  }
};

/**
 * A test process that dies without stopping its control plane (SIGKILL, a crashed runner)
 * leaves nothing behind: the reaper kills etcd, the API server, the controller-manager and the
 * scheduler, and removes their directory.
 */
describe("kube-lab reaper", () => {
  it("kills every component when the process that started them is killed", async () => {
    const script = `
      import { startKubeControlPlane } from ${JSON.stringify(INDEX)};
      import { readFileSync } from "node:fs";
      const cp = await startKubeControlPlane({ progress: () => {} });
      const pids = JSON.parse(readFileSync(cp.dir + "/pids.json", "utf8")).map((e) => e.pid);
      console.log(JSON.stringify({ dir: cp.dir, pids }));
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", "--input-type=module", "-e", script], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const until = Date.now() + 110_000;
    while (!out.includes("\n")) {
      if (Date.now() > until || child.exitCode !== null) throw new Error(`the control plane did not start: ${err}`);
      await sleep(100);
    }
    const { dir, pids } = JSON.parse(out) as { dir: string; pids: number[] };
    expect(pids).toHaveLength(4);
    expect(pids.every(alive)).toBe(true);
    child.kill("SIGKILL");
    const gone = Date.now() + 10_000;
    while ((pids.some(alive) || existsSync(dir)) && Date.now() < gone) await sleep(100);
    expect(pids.filter(alive)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  }, 120_000);
});
