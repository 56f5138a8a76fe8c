import type { NatsConnection } from "@nats-io/transport-node";
import type { Clock } from "@fenceline/contracts";
import { connectNats, startNatsServer, type Logger, type NatsServer } from "@fenceline/bus";

/** A benchmark's own nats-server, and connections to it that are closed when the benchmark ends. */
export type BenchNats = {
  server: NatsServer;
  connect(name: string): Promise<NatsConnection>;
};

/**
 * Runs `bench` against a nats-server started for it (temporary store). However it ends, every
 * connection opened with `connect` is closed and the server stopped.
 */
export async function withBenchNats<T>(log: Logger, bench: (nats: BenchNats) => Promise<T>): Promise<T> {
  const server = await startNatsServer({ log });
  const connections: NatsConnection[] = [];
  const connect = async (name: string) => {
    const nc = await connectNats(server.url, { name });
    connections.push(nc);
    return nc;
  };
  try {
    return await bench({ server, connect });
  } finally {
    await Promise.allSettled(connections.map((c) => c.close()));
    await server.stop();
  }
}

/** A clock whose timers never fire: a benchmarked engine's timer service stays idle. */
export const idleClock: Clock = { now: () => Date.now(), setTimeout: () => null, clearTimeout: () => {} };
