import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, createLogger, startNatsServer, type NatsServer } from "@fenceline/bus";
import { DeadLetter } from "@fenceline/contracts";
import { Buckets, Streams, Subjects, provisionStreams } from "@fenceline/streams";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runNodeStateService, type NodeStateService } from "../src/node-state-service.js";
import { readStream } from "../../../test/support/read-stream.js";

const log = createLogger("node-state-test", { level: "silent" });
let server: NatsServer;
let nc: NatsConnection;
let services: NodeStateService[] = [];

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connectNats(server.url, { name: "node-state-test" });
  await provisionStreams(nc);
  const kv = await new Kvm(nc).open(Buckets.nodes);
  // What the engine stores (key: the node name); only path and context matter here.
  await kv.put("node-1", JSON.stringify({ v: 1, node: "node-1", path: "fencing", context: { epoch: 3, since: 1_700 } }));
  await kv.put("web.example", JSON.stringify({ v: 1, node: "web.example", path: "healthy", context: { epoch: 0, since: 5 } }));
  await kv.put("gone", JSON.stringify({ v: 1, node: "gone", path: "healthy", context: { epoch: 0, since: 5 } }));
  await kv.delete("gone");
  services = [await runNodeStateService({ nc, log }), await runNodeStateService({ nc, log })];
});
afterAll(async () => {
  for (const s of services) await s.stop();
  await nc?.close();
  await server?.stop();
});

const ask = async (node: string) => (await nc.request(Subjects.nodeState(node), "", { timeout: 2_000 })).json<Record<string, unknown>>();

describe("node state service (fl.state.<node>)", () => {
  it("answers with the engine's state and epoch from FL_NODES", async () => {
    expect(await ask("node-1")).toMatchObject({ v: 1, node: "node-1", known: true, state: "fencing", epoch: 3, since: 1_700 });
    expect(await ask("web.example")).toMatchObject({ node: "web.example", known: true, state: "healthy" });
    expect(Subjects.nodeState("web.example")).toBe("fl.state.web_example");
  });

  it("says known: false for a node without a snapshot (never seen, or deleted)", async () => {
    expect(await ask("node-404")).toMatchObject({ v: 1, node: "node-404", known: false });
    expect(await ask("gone")).toMatchObject({ known: false });
  });

  it("answers a request for an invalid node name with an error and a dead letter", async () => {
    const reply = (await nc.request("fl.state.Not-A-Node", "", { timeout: 2_000 })).json<{ error?: string }>();
    expect(reply.error).toMatch(/is not a node name/);
    await new Promise((r) => setTimeout(r, 200));
    const letters = (await readStream(nc, Streams.deadLetters, Subjects.deadLetter("node-state"))).map((m) => DeadLetter.parse(m.data));
    expect(letters.at(-1)).toMatchObject({ subject: "fl.state.Not-A-Node", reason: "schema" });
  });

  it("two instances share a queue group: each request is answered once", async () => {
    const before = services.map((s) => s.answered()).reduce((a, b) => a + b, 0);
    const inbox = nc.subscribe("_test.replies.>");
    const replies: string[] = [];
    void (async () => {
      for await (const m of inbox) replies.push(m.string());
    })();
    for (let i = 0; i < 10; i++) nc.publish(Subjects.nodeState("node-1"), "", { reply: `_test.replies.${i}` });
    await new Promise((r) => setTimeout(r, 300));
    inbox.unsubscribe();
    expect(replies).toHaveLength(10);
    expect(services.map((s) => s.answered()).reduce((a, b) => a + b, 0) - before).toBe(10);
  });
});
