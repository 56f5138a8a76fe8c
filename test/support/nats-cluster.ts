import { startNatsServer, type NatsServer } from "@fenceline/bus";
import { freePort } from "./free-port.js";

/**
 * Three (or `size`) nats-servers clustered on loopback route ports. The route ports are picked
 * by bind-and-release before the servers start, so another process can take one in between;
 * nats-server then exits ("address already in use") and the whole cluster is started again on
 * new ports, up to `attempts` times.
 */
export async function startNatsCluster(name: string, size = 3, attempts = 3): Promise<NatsServer[]> {
  for (let attempt = 1; ; attempt++) {
    const routePorts = await Promise.all(Array.from({ length: size }, () => freePort()));
    const routes = routePorts.map((p) => `nats://127.0.0.1:${p}`);
    const started = await Promise.allSettled(
      routePorts.map((port, i) => startNatsServer({ serverName: `n${i}`, cluster: { name, port, routes: routes.filter((_, j) => j !== i) } })),
    );
    const servers = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    if (servers.length === size) return servers;
    await Promise.all(servers.map((s) => s.stop()));
    const failure = started.find((s) => s.status === "rejected")!.reason as Error;
    if (attempt >= attempts) throw failure;
    console.warn(`nats cluster ${name}: attempt ${attempt} failed, retrying on new ports: ${failure.message.split("\n")[0]}`);
  }
}
