import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, ROOT } from "../e2e/cli.js";

const run = promisify(execFile);

// `fenceline demo --kubernetes real --hold`: the demo's scenarios on a real control plane of its
// own (kube-lab), then kubectl against it with the kubeconfig named in the endpoints file.
describe("demo --kubernetes real --hold, reached with kubectl", () => {
  const dir = mkdtempSync(join(tmpdir(), "fenceline-demo-real-"));
  const endpointsFile = join(dir, "endpoints.json");
  let demo: ReturnType<typeof spawn>;
  let exit: Promise<number | null>;
  let stdout = "";
  let stderr = "";
  let endpoints: { kubernetes: string; kubernetesMode: string; kubeconfig: string; nats: string };
  const kubectl = async (...args: string[]) => (await run("kubectl", ["--kubeconfig", endpoints.kubeconfig, ...args])).stdout;

  beforeAll(async () => {
    demo = spawn(process.execPath, [CLI, "demo", "--kubernetes", "real", "--hold", "--endpoints", endpointsFile, "--nodes", "8"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    demo.stdout!.on("data", (d) => (stdout += d));
    demo.stderr!.on("data", (d) => (stderr += d));
    exit = new Promise((resolve) => demo.on("close", resolve));
    const until = Date.now() + 240_000;
    while (!existsSync(endpointsFile)) {
      if (Date.now() > until || demo.exitCode !== null) throw new Error(`the demo wrote no endpoints file\n${stderr.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    endpoints = JSON.parse(readFileSync(endpointsFile, "utf8"));
  }, 260_000);

  afterAll(async () => {
    demo?.kill("SIGINT");
    const code = await exit;
    rmSync(dir, { recursive: true, force: true });
    expect(code, stderr.slice(-3000)).toBe(0);
    // The demo's control plane is gone with it (its directory holds the kubeconfig).
    expect(existsSync(endpoints.kubeconfig)).toBe(false);
  }, 60_000);

  it("ran the default scenario on the real API server: every node back, no invariant broken", () => {
    expect(stdout).toContain("scenario default: 8 nodes");
    expect(stdout).toContain("invariants: no stateful workload ever ran on two nodes at once");
    expect(stdout).toContain("result: OK");
    expect(endpoints.kubernetesMode).toBe("real");
    expect(endpoints.kubernetes).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(stderr).toMatch(/Kubernetes 1\.37\.2 control plane ready in/);
  });

  it("kubectl get nodes,pods,statefulsets,volumeattachments,leases -A works with the written kubeconfig", async () => {
    const out = await kubectl("get", "nodes,pods,statefulsets,volumeattachments,leases", "-A");
    for (let i = 1; i <= 8; i++) {
      expect(out).toMatch(new RegExp(`node/node-${i}\\s+Ready\\s`));
      expect(out).toContain(`lease.coordination.k8s.io/node-${i} `);
    }
    for (const replica of ["db-0", "db-1", "db-2", "queue-0", "queue-1", "queue-2"])
      expect(out).toMatch(new RegExp(`demo\\s+pod/${replica}\\s+1/1\\s+Running`));
    expect(out).toMatch(/demo\s+statefulset\.apps\/db\s+3\/3/);
    expect(out).toMatch(/demo\s+statefulset\.apps\/queue\s+3\/3/);
    // Each ReadWriteOnce volume attached to exactly one node, by the real attach-detach controller.
    const attachments = out.split("\n").filter((l) => l.includes("volumeattachment.storage.k8s.io/"));
    for (const pv of ["demo-db-0", "demo-db-1", "demo-db-2", "demo-queue-0", "demo-queue-1", "demo-queue-2"]) {
      expect(
        attachments.filter((l) => new RegExp(`\\s${pv}\\s+node-\\d+\\s+true\\s`).test(l)),
        pv,
      ).toHaveLength(1);
    }
  });

  it("kubectl get events -A tells the fencing story on the Node objects, beside the controllers' own", async () => {
    const out = await kubectl("get", "events", "-A");
    // Whether a node is remediated before it is back (crash: 5 s; network loss: its watchdog)
    // depends on a second's timing; fencing and the rejoin happen in every run.
    for (const reason of ["FencingStarted", "FencingConfirmed", "Rejoined"])
      expect(out, reason).toMatch(new RegExp(`\\s${reason}\\s+node/node-\\d+`));
    // The real controllers' own Events are there too.
    expect(out).toMatch(/SuccessfulCreate\s+statefulset\/db/);
  });
});
