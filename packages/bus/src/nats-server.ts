import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ErrorCode, FencelineError } from "@fenceline/contracts";
import { MIN_NATS_SERVER_VERSION, ToolchainError, ensureBinary } from "@fenceline/toolchain";
import type { Logger } from "./logger.js";

export type ClusterOptions = {
  name: string;
  /** The route (cluster) port of this server. */
  port: number;
  /** Route URLs of the other servers, e.g. "nats://127.0.0.1:6223". */
  routes: string[];
};

export type NatsServerOptions = {
  /** JetStream store; a temporary directory (removed on stop) when not given. */
  storeDir?: string;
  host?: string;
  /** -1 picks a free port. */
  port?: number;
  jetstream?: boolean;
  /** Server name; JetStream clusters need a distinct one per server. */
  serverName?: string;
  cluster?: ClusterOptions;
  configFile?: string;
  extraArgs?: string[];
  /** Receives the server's own log lines at debug level. */
  log?: Logger;
  /** How long to wait for the server to report its port. */
  startTimeoutMs?: number;
};

export type NatsServer = {
  url: string;
  port: number;
  pid: number;
  storeDir: string;
  stop(): Promise<void>;
};

/**
 * The nats-server to run: one on PATH at least as new as Fenceline needs, else the pinned
 * version built from the Go module proxy into the cache on first use (progress on stderr).
 * Throws FencelineError(NatsServerMissing) naming the step that failed.
 */
export async function natsServerBinary(): Promise<string> {
  try {
    return await ensureBinary("nats-server");
  } catch (err) {
    if (!(err instanceof ToolchainError)) throw err;
    throw new FencelineError(
      ErrorCode.NatsServerMissing,
      `no nats-server ≥ ${MIN_NATS_SERVER_VERSION} on PATH, and building one failed (${err.message}); ` +
        "install Go ≥ 1.26 so Fenceline can build it, put a recent nats-server on PATH, or set NATS_URL to an existing server",
      { cause: err },
    );
  }
}

/** Spawns a local nats-server and resolves once it listens, with the port it really got. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const binary = await natsServerBinary();
  const host = options.host ?? "127.0.0.1";
  const ownStore = options.storeDir === undefined;
  const storeDir = options.storeDir ?? (await mkdtemp(join(tmpdir(), "fenceline-js-")));
  const portsDir = await mkdtemp(join(tmpdir(), "fenceline-ports-"));

  const args = ["-a", host, "-p", String(options.port ?? -1), "--ports_file_dir", portsDir];
  if (options.jetstream ?? true) args.push("-js", "-sd", storeDir);
  if (options.serverName) args.push("-n", options.serverName);
  if (options.cluster) {
    const { name, port, routes } = options.cluster;
    args.push("--cluster_name", name, "--cluster", `nats://${host}:${port}`);
    if (routes.length > 0) args.push("--routes", routes.join(","));
  }
  if (options.configFile) args.push("-c", options.configFile);
  args.push(...(options.extraArgs ?? []));

  const child = spawn(binary, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-8_192);
    for (const line of chunk.split("\n")) if (line.trim()) options.log?.debug({ pid: child.pid }, line.trim());
  });
  let running = true;
  const exited = new Promise<void>((resolve) => {
    const done = () => {
      running = false;
      live.delete(child);
      resolve();
    };
    child.once("close", done);
    child.once("error", (err) => {
      stderr += `\n${err.message}`;
      done();
    });
  });
  track(child);

  const cleanup = async () => {
    if (running) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(portsDir, { recursive: true, force: true });
    if (ownStore) await rm(storeDir, { recursive: true, force: true });
  };

  try {
    if (child.pid === undefined) throw new Error("spawn failed");
    const url = await waitForPortsFile(portsDir, child.pid, () => running, options.startTimeoutMs ?? 10_000);
    const port = Number(new URL(url).port);
    return { url, port, pid: child.pid, storeDir, stop: cleanup };
  } catch (err) {
    await cleanup();
    throw new FencelineError(
      ErrorCode.Internal,
      `nats-server did not start (${binary} ${args.join(" ")}): ${(err as Error).message}\n${stderr.trim()}`,
      { cause: err },
    );
  }
}

const live = new Set<ChildProcess>();
let exitHooked = false;

/** Don't leave servers behind when the process exits without calling stop(). */
function track(child: ChildProcess): void {
  live.add(child);
  if (exitHooked) return;
  exitHooked = true;
  process.once("exit", () => {
    for (const c of live) c.kill("SIGKILL");
  });
}

/** nats-server writes `nats-server_<pid>.ports` = {"nats":["nats://host:port"],...} once it listens. */
async function waitForPortsFile(dir: string, pid: number, alive: () => boolean, timeoutMs: number): Promise<string> {
  const file = join(dir, `nats-server_${pid}.ports`);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error("the server exited");
    if (existsSync(file)) {
      try {
        const ports = JSON.parse(await readFile(file, "utf8")) as { nats?: string[] };
        const url = ports.nats?.[0];
        if (url) return url;
      } catch {
        // written but not complete yet
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const seen = await readdir(dir).catch(() => []);
  throw new Error(`no ports file after ${timeoutMs} ms (found: ${seen.join(", ") || "nothing"})`);
}
