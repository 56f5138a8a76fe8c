import { connect, type NatsConnection } from "@nats-io/transport-node";
import { ErrorCode, FencelineError } from "@fenceline/contracts";
import type { Logger } from "./logger.js";

export type ConnectOptions = {
  /** Shown by the server in connection lists (`nats server report connections`). */
  name: string;
  /** How long the first connect may take. */
  timeoutMs?: number;
  /** Logs disconnects and reconnects. */
  log?: Logger;
};

/**
 * Connects once, then reconnects forever. Only the first connect can fail, with a
 * FencelineError(NatsUnavailable) naming the URL.
 */
export async function connectNats(url: string, options: ConnectOptions): Promise<NatsConnection> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: url,
      name: options.name,
      maxReconnectAttempts: -1,
      timeout: options.timeoutMs ?? 3_000,
    });
  } catch (err) {
    throw new FencelineError(
      ErrorCode.NatsUnavailable,
      `cannot connect to NATS at ${url}: ${(err as Error).message} (is nats-server running? set NATS_URL to point at it)`,
      { cause: err },
    );
  }
  if (options.log) void logStatus(nc, options.log);
  return nc;
}

async function logStatus(nc: NatsConnection, log: Logger): Promise<void> {
  for await (const s of nc.status()) {
    if (s.type === "disconnect" || s.type === "error") log.warn({ nats: s }, `nats ${s.type}`);
    else if (s.type === "reconnect") log.info({ nats: s }, "nats reconnected");
  }
}
