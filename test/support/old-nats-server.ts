import { createServer, type Server, type Socket } from "node:net";

export type OldNatsServer = { url: string; stop(): Promise<void> };

/**
 * A loopback TCP server that speaks just enough of the NATS client protocol for a client to
 * connect (INFO, then PONG to every PING) and reports `version` in its INFO: what a client sees
 * when it meets an old nats-server (Debian's 2.9.10), without needing one installed.
 */
export async function startOldNatsServer(version = "2.9.10"): Promise<OldNatsServer> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    const info = {
      server_id: "OLD",
      server_name: "old",
      version,
      proto: 1,
      go: "go1.19",
      host: "127.0.0.1",
      port: 0,
      headers: true,
      max_payload: 1_048_576,
      jetstream: true,
    };
    socket.write(`INFO ${JSON.stringify(info)}\r\n`);
    let buffered = "";
    socket.on("data", (chunk) => {
      buffered += chunk.toString("latin1");
      let end: number;
      while ((end = buffered.indexOf("\r\n")) >= 0) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        if (line.startsWith("PING")) socket.write("PONG\r\n");
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("no address");
  return {
    url: `nats://127.0.0.1:${address.port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
