import { createServer, type Server } from "node:net";

const listen = (): Promise<Server> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });

/**
 * `count` distinct loopback TCP ports nobody listens on now: all bound at once, then released, so
 * the kernel cannot hand the same port out twice (two single picks in a row can). Another process
 * may still take one before the caller binds it.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await listen());
    return servers.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** A loopback TCP port nobody listens on now (bound, then released). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}
