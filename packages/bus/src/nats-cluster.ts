import { freePorts } from "@fenceline/toolchain";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startNatsServer, type NatsServer, type NatsServerOptions } from "./nats-server.js";
import type { Logger } from "./logger.js";

export type NatsCluster = {
  /** The servers, in order (`n0`, `n1`, …); a restarted server replaces its entry. */
  servers: NatsServer[];
  /** Every client URL of the servers started with the cluster, comma-separated (what `connectNats` takes). */
  url: string;
  /** Starts server `index` again (after it died), or for the first time (see `started`), with its name, store and ports. */
  restart(index: number): Promise<NatsServer>;
  stop(): Promise<void>;
};

/**
 * A JetStream cluster of `size` nats-servers on loopback (tests and benchmarks), each with its
 * own temporary store (removed by the server's `stop`). Route and client ports are picked by bind-and-release before the
 * servers start, so another process can take one in between: nats-server then exits and the
 * whole cluster is started again on new ports, up to `attempts` times.
 */
export async function startNatsCluster(
  name: string,
  options: {
    size?: number;
    /** How many of the servers start now (default all): the others wait for `restart(index)`, as a pod scheduled late does. */
    started?: number;
    attempts?: number;
    log?: Logger;
  } = {},
): Promise<NatsCluster> {
  const size = options.size ?? 3;
  const startNow = options.started ?? size;
  const attempts = options.attempts ?? 3;
  for (let attempt = 1; ; attempt++) {
    const ports = await freePorts(2 * size);
    const routePorts = ports.slice(0, size);
    const clientPorts = ports.slice(size);
    const stores = await Promise.all(Array.from({ length: size }, () => mkdtemp(join(tmpdir(), "fenceline-js-"))));
    const routes = routePorts.map((p) => `nats://127.0.0.1:${p}`);
    const specs: NatsServerOptions[] = routePorts.map((port, i) => ({
      serverName: `n${i}`,
      port: clientPorts[i]!,
      storeDir: stores[i]!,
      cluster: { name, port, routes: routes.filter((_, j) => j !== i) },
      ...(options.log ? { log: options.log } : {}),
    }));
    // A server's stop() also removes its store; a server that was killed keeps it for restart().
    const start = async (i: number): Promise<NatsServer> => {
      const server = await startNatsServer(specs[i]!);
      return { ...server, stop: async () => (await server.stop(), await rm(stores[i]!, { recursive: true, force: true })) };
    };
    const started = await Promise.allSettled(specs.slice(0, startNow).map((_, i) => start(i)));
    const servers = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    if (servers.length === startNow) {
      return {
        servers,
        url: servers.map((s) => s.url).join(","),
        async restart(index) {
          servers[index] = await start(index);
          return servers[index];
        },
        async stop() {
          await Promise.all(servers.map((s) => s.stop()));
          // The stores of servers that never started.
          await Promise.all(stores.map((dir) => rm(dir, { recursive: true, force: true })));
        },
      };
    }
    await Promise.all(servers.map((s) => s.stop()));
    await Promise.all(stores.map((dir) => rm(dir, { recursive: true, force: true })));
    const failure = started.find((s) => s.status === "rejected")!.reason as Error;
    if (attempt >= attempts) throw failure;
    options.log?.warn({ err: failure }, `nats cluster ${name}: attempt ${attempt} failed, retrying on new ports`);
  }
}
