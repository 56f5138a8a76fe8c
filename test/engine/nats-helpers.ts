import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import type { Clock } from "@fenceline/contracts";
import { connectNats, createLogger, startNatsServer, type NatsServer } from "@fenceline/bus";
import type { NodeSnapshot } from "@fenceline/engine";
import { Buckets, Streams, createDefinitions, provisionStreams } from "@fenceline/streams";

/** Logs stay quiet unless FENCELINE_LOG_LEVEL asks for them. */
export const testLog = (name: string) => createLogger(name, { level: process.env.FENCELINE_LOG_LEVEL ?? "silent" });

/** A clock whose timers never fire: the engine's timer service stays idle (timer events are inputs here). */
export const stoppedClock: Clock = { now: () => 0, setTimeout: () => null, clearTimeout: () => {} };

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitFor(what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<void> {
  if (!(await waitUntil(condition, timeoutMs))) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Like waitFor, but says whether the condition came true instead of throwing. */
export async function waitUntil(condition: () => Promise<boolean> | boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

export type TestJetStream = {
  server: NatsServer;
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** Another connection to the same server (one per engine instance, so "killing" one closes it). */
  connect(name: string): Promise<NatsConnection>;
  stop(): Promise<void>;
};

/**
 * A private nats-server (random loopback port, temporary store) with Fenceline's streams. The
 * engine consumers' ack wait is `ackWaitMs`, so an event left unacknowledged by a killed engine
 * comes back in about a second instead of 30 (an engine that takes a partition over does not
 * wait for it: it rewinds the consumer).
 */
export async function startJetStream(options: { ackWaitMs?: number } = {}): Promise<TestJetStream> {
  const server = await startNatsServer();
  const opened: NatsConnection[] = [];
  const connect = async (name: string) => {
    const nc = await connectNats(server.url, { name });
    opened.push(nc);
    return nc;
  };
  try {
    const nc = await connect("test");
    const definitions = createDefinitions();
    for (const consumer of definitions.consumers) {
      if (consumer.stream === Streams.events && consumer.config.durable_name.startsWith("engine-")) {
        consumer.config.ack_wait = nanos(options.ackWaitMs ?? 30_000);
      }
    }
    await provisionStreams(nc, { definitions });
    return {
      server,
      nc,
      js: jetstream(nc),
      jsm: await jetstreamManager(nc),
      connect,
      async stop() {
        await Promise.allSettled(opened.map((c) => (c.isClosed() ? Promise.resolve() : c.close())));
        await server.stop();
      },
    };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

/** Every message a stream holds, in stream order (work-queue streams included: nothing is consumed). */
export async function readStream(jsm: JetStreamManager, stream: string): Promise<StoredMsg[]> {
  const { state } = await jsm.streams.info(stream);
  const out: StoredMsg[] = [];
  if (state.messages === 0) return out;
  for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
    const msg = await jsm.streams.getMessage(stream, { seq });
    if (msg) out.push(msg);
  }
  return out;
}

export async function readJson<T>(jsm: JetStreamManager, stream: string): Promise<T[]> {
  return (await readStream(jsm, stream)).map((m) => m.json<T>());
}

export async function messageCount(jsm: JetStreamManager, stream: string): Promise<number> {
  return (await jsm.streams.info(stream)).state.messages;
}

/**
 * FL_NODES as node → { snapshot, revision }. The keys come from the bucket stream's subjects
 * (one request), not `kv.keys()`: its ordered consumer can stall for ~30 s when a key is written
 * while it lists them, which the tests do while the engine works.
 */
export async function readSnapshots(nc: NatsConnection): Promise<Map<string, { snapshot: NodeSnapshot; revision: number }>> {
  const kv = await new Kvm(nc).open(Buckets.nodes);
  const jsm = await jetstreamManager(nc);
  const prefix = `$KV.${Buckets.nodes}.`;
  const info = await jsm.streams.info(`KV_${Buckets.nodes}`, { subjects_filter: `${prefix}>` });
  const keys = Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
  const out = new Map<string, { snapshot: NodeSnapshot; revision: number }>();
  for (const key of keys.sort()) {
    const entry = await kv.get(key);
    if (entry && entry.operation === "PUT") out.set(key, { snapshot: entry.json<NodeSnapshot>(), revision: entry.revision });
  }
  return out;
}
