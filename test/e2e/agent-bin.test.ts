import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, startNatsServer, type NatsServer } from "@fenceline/bus";
import { Heartbeat } from "@fenceline/contracts";
import { heartbeatAck } from "@fenceline/detectors";
import { loadAllYaml } from "@fenceline/kubernetes";
import { Subjects } from "@fenceline/streams";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "./cli.js";

/** The built `fenceline-agent` bin (packages/agent), as the DaemonSet runs it. */
const AGENT_BIN = join(ROOT, "packages", "agent", "dist", "bin.js");

type Run = { code: number | null; stdout: string; stderr: string };

function startAgentBin(args: string[]) {
  const child = spawn(process.execPath, [AGENT_BIN, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const done = new Promise<Run>((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
  return { child, done };
}

const runAgentBin = async (args: string[]): Promise<Run> => {
  const { child, done } = startAgentBin(args);
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  try {
    return await done;
  } finally {
    clearTimeout(timer);
  }
};

describe("fenceline-agent (the agent's own entry point)", () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let dir: string;
  const configFor = async (node: string, url: string) => {
    const watchdog = join(dir, `${node}.watchdog`);
    await writeFile(watchdog, "");
    await writeFile(join(dir, `${node}.boot_id`), `${node}-boot-1\n`);
    const file = join(dir, `${node}.json`);
    const config = {
      node,
      nats: { url },
      peerListen: { host: "127.0.0.1", port: 0 },
      watchdog: { path: watchdog, fallbackRebootCommand: null },
      stateDir: join(dir, node),
      bootIdFile: join(dir, `${node}.boot_id`),
      logLevel: "silent",
    };
    await writeFile(file, JSON.stringify(config));
    return { file, watchdog };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "fenceline-agent-bin-"));
    server = await startNatsServer();
    nc = await connectNats(server.url, { name: "agent-bin-test" });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("runs the agent: heartbeats reach NATS, the watchdog is fed, SIGTERM stops it cleanly once the control plane recorded it", async () => {
    const { file, watchdog } = await configFor("node-1", server.url);
    // The heartbeat detector's part: every heartbeat acked; the stopping one answered once the
    // withdrawal of the agent's contract is recorded, which lets the agent disarm its watchdog.
    let stopping = 0;
    const detector = nc.subscribe(Subjects.heartbeat("node-1"), {
      callback: (err, m) => {
        if (err) return;
        const hb = Heartbeat.parse(m.json());
        if (hb.stopping) stopping += 1;
        m.respond(JSON.stringify(heartbeatAck(hb, { at: Date.now(), membership: null, withdrawn: hb.stopping === true })));
      },
    });
    const heartbeat = new Promise<unknown>((resolve) => {
      const sub = nc.subscribe(Subjects.heartbeat("node-1"), { max: 1 });
      void (async () => {
        for await (const m of sub) resolve(m.json());
      })();
    });
    const agent = startAgentBin(["--config", file]);
    try {
      const hb = (await Promise.race([
        heartbeat,
        agent.done.then((r) => Promise.reject(new Error(`the agent exited ${r.code}: ${r.stderr}`))),
      ])) as { node: string };
      expect(hb.node).toBe("node-1");
      expect((await stat(watchdog)).size).toBeGreaterThan(0);
    } finally {
      agent.child.kill("SIGTERM");
    }
    const exit = await agent.done;
    detector.unsubscribe();
    expect(exit.code, exit.stderr).toBe(0);
    expect(stopping).toBe(1);
    // Magic close: the last byte written to the device on a clean stop is "V".
    expect((await readFile(watchdog, "utf8")).at(-1)).toBe("V");
  });

  it("SIGTERM without an answer from the control plane leaves the watchdog armed (the engine may assume the node resets)", async () => {
    const { file, watchdog } = await configFor("node-4", "nats://127.0.0.1:1");
    const agent = startAgentBin(["--config", file]);
    try {
      const until = Date.now() + 10_000;
      while ((await stat(watchdog)).size === 0) {
        if (Date.now() > until) throw new Error("the watchdog was never fed");
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      agent.child.kill("SIGTERM");
    }
    const exit = await agent.done;
    expect(exit.code, exit.stderr).toBe(0);
    expect((await readFile(watchdog, "utf8")).at(-1)).not.toBe("V");
  });

  it("--check prints the configuration with its defaults filled in", async () => {
    const { file } = await configFor("node-2", server.url);
    const result = await runAgentBin(["--config", file, "--check"]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ node: "node-2", nats: { url: server.url } });
  });

  it("--gate stays closed while NATS cannot be reached", async () => {
    const { file } = await configFor("node-3", "nats://127.0.0.1:1");
    const result = await runAgentBin(["--config", file, "--gate", "--gate-timeout", "3s"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/fenceline agent --gate: node-3 waits: the control plane cannot be asked/);
  });

  it("a usage error names fenceline-agent and exits 2; a bad configuration exits 1 with one line", async () => {
    const usage = await runAgentBin(["--gate-timeout", "3s", "--config", "x.json"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^fenceline-agent: --gate-timeout goes with --gate/);
    expect(usage.stderr).toMatch(/usage: fenceline-agent --config agent\.json/);
    const missing = await runAgentBin(["--config", join(dir, "missing.json"), "--check"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^fenceline-agent: /);
    expect(missing.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("is what deploy/ runs: the DaemonSet's container is the agent image (deploy/Dockerfile --target agent), its args the agent's", async () => {
    const daemonSet = (
      loadAllYaml(readFileSync(join(ROOT, "deploy", "agent.yaml"), "utf8")) as Array<{ kind: string; spec?: unknown }>
    ).find((m) => m.kind === "DaemonSet") as unknown as {
      spec: { template: { spec: { containers: Array<{ name: string; image: string; command?: string[]; args: string[] }> } } };
    };
    const [container] = daemonSet.spec.template.spec.containers;
    expect(container!.image).toMatch(/\/fenceline-agent:/);
    expect(container!.command).toBeUndefined();
    const dockerfile = readFileSync(join(ROOT, "deploy", "Dockerfile"), "utf8");
    expect(dockerfile).toMatch(/pnpm deploy --filter @fenceline\/agent --prod \/agent/);
    const stage = dockerfile.split(/^FROM /m).find((s) => / AS agent\n/.test(s.split("\n")[0]! + "\n"));
    expect(stage).toMatch(/COPY --from=build \/agent \/app/);
    expect(stage).toMatch(/ENTRYPOINT \["node", "\/app\/dist\/bin\.js"\]/);
    const manifest = JSON.parse(readFileSync(join(ROOT, "packages", "agent", "package.json"), "utf8")) as { bin: Record<string, string> };
    expect(manifest.bin["fenceline-agent"]).toBe("./dist/bin.js");
    // The DaemonSet's args, with its rendered config file swapped for one of this test's.
    const { file } = await configFor("node-4", server.url);
    expect(container!.args).toContain("/run/fenceline/agent.json");
    const result = await runAgentBin([...container!.args.map((a) => (a === "/run/fenceline/agent.json" ? file : a)), "--check"]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ node: "node-4" });
  });
});
