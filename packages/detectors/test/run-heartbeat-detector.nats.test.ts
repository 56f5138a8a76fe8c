import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, createLogger, openMembershipStore, startNatsServer, type NatsServer } from "@fenceline/bus";
import {
  createMembershipView,
  DeadLetter,
  HeartbeatAck,
  NodeEvent,
  nodeToken,
  type AgentContract,
  type Heartbeat,
} from "@fenceline/contracts";
import { Buckets, Streams, Subjects, provisionStreams } from "@fenceline/streams";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runHeartbeatDetector } from "../src/run-heartbeat-detector.js";
import { readStream } from "../../../test/support/read-stream.js";

const log = createLogger("heartbeat-detector-test", { level: "silent" });
const TIMEOUT_MS = 400;

let server: NatsServer;
let nc: NatsConnection;
let detector: Awaited<ReturnType<typeof runHeartbeatDetector>>;

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connectNats(server.url, { name: "heartbeat-detector-test" });
  await provisionStreams(nc);
  // The engine's snapshots from before this detector started: one node in suspect, silent.
  const nodes = await new Kvm(nc).open(Buckets.nodes);
  await nodes.put(
    nodeToken("seeded-node"),
    JSON.stringify({ node: "seeded-node", path: "suspect.waiting", context: { bootId: "boot-s", epoch: 2 } }),
  );
  await nodes.put(
    nodeToken("known.node"),
    JSON.stringify({ node: "known.node", path: "healthy", context: { bootId: "boot-k", epoch: 1 } }),
  );
  await nodes.put(
    nodeToken("gone-node"),
    JSON.stringify({ node: "gone-node", path: "forgotten", context: { bootId: "boot-g", epoch: 1 } }),
  );
  const members = await openMembershipStore(nc);
  await members.write(createMembershipView(1, true, [{ node: "known.node" }, { node: "seeded-node" }]), 0);
  await members.write(
    createMembershipView(2, true, [{ node: "known.node" }, { node: "node-m", peerUrl: "http://10.0.0.9:9797" }, { node: "seeded-node" }]),
    1,
  );
  detector = await runHeartbeatDetector({ nc, timeoutMs: TIMEOUT_MS, tickMs: 50, log });
});
afterAll(async () => {
  await detector?.stop();
  await nc?.close();
  await server?.stop();
});

let seq = 0;
const heartbeat = (node: string, fields: Partial<Heartbeat> = {}): Heartbeat => ({
  v: 1,
  node,
  bootId: `boot-${node}`,
  incarnation: 1,
  seq: seq++,
  sentAt: Date.now(),
  ...fields,
});

const events = async (node?: string) =>
  (await readStream(nc, Streams.events, node === undefined ? undefined : Subjects.storedEvent(node))).map((m) => NodeEvent.parse(m.data));
const deadLetters = async () =>
  (await readStream(nc, Streams.deadLetters, Subjects.deadLetter("heartbeat-detector"))).map((m) => DeadLetter.parse(m.data));

describe("runHeartbeatDetector", () => {
  it("acks a heartbeat sent with a reply subject, with the node's recorded state when there is one", async () => {
    const reply = await nc.request(Subjects.heartbeat("node-a"), JSON.stringify(heartbeat("node-a")), { timeout: 2_000 });
    const ack = HeartbeatAck.parse(reply.json());
    expect(ack.node).toBe("node-a");
    expect(ack.state).toBeUndefined();
    expect(Math.abs(ack.at - Date.now())).toBeLessThan(5_000);

    const known = HeartbeatAck.parse(
      (
        await nc.request(Subjects.heartbeat("known.node"), JSON.stringify(heartbeat("known.node", { bootId: "boot-k" })), {
          timeout: 2_000,
        })
      ).json(),
    );
    expect(known).toMatchObject({ node: "known.node", state: "healthy" });
  });

  it("publishes node.joined to FL_EVENTS, then heartbeat.missed after silence", async () => {
    await nc.request(
      Subjects.heartbeat("node-b"),
      JSON.stringify(heartbeat("node-b", { hostGroup: "workers", controlPlane: false, checksums: { app: "c1" } })),
      { timeout: 2_000 },
    );
    await expect
      .poll(async () => (await events("node-b")).map((e) => e.type), { timeout: 5_000 })
      .toEqual(["node.joined", "heartbeat.missed"]);
    const [joined, missed] = await events("node-b");
    expect(joined).toMatchObject({
      source: "heartbeat-detector",
      data: { bootId: "boot-node-b", hostGroup: "workers", controlPlane: false, checksums: { app: "c1" } },
    });
    expect(missed!.type === "heartbeat.missed" && missed!.at - missed!.data.lastSeenAt).toBeGreaterThanOrEqual(TIMEOUT_MS);

    nc.publish(Subjects.heartbeat("node-b"), JSON.stringify(heartbeat("node-b")));
    await expect
      .poll(async () => (await events("node-b")).map((e) => e.type), { timeout: 5_000 })
      .toEqual(["node.joined", "heartbeat.missed", "heartbeat.resumed"]);
  });

  it("reports a node known from the snapshots that stays silent, after the timeout", async () => {
    await expect.poll(async () => (await events("seeded-node")).map((e) => e.type), { timeout: 5_000 }).toEqual(["heartbeat.missed"]);
    expect((await events("seeded-node"))[0]!.data).toMatchObject({ bootId: "boot-s" });
  });

  it("dead-letters a heartbeat whose node differs from its subject as forbidden, and publishes nothing for it", async () => {
    nc.publish(Subjects.heartbeat("node-c"), JSON.stringify(heartbeat("node-d")));
    await expect.poll(async () => (await deadLetters()).map((d) => d.reason), { timeout: 5_000 }).toContain("forbidden");
    const letter = (await deadLetters()).find((d) => d.reason === "forbidden")!;
    expect(letter.subject).toBe(Subjects.heartbeat("node-c"));
    expect(letter.error).toContain("node-d");
    expect(JSON.parse(letter.payload)).toMatchObject({ node: "node-d" });
    expect(await events("node-d")).toEqual([]);
    expect(await events("node-c")).toEqual([]);
  });

  it("dead-letters malformed JSON as not-json and a schema violation as schema", async () => {
    nc.publish(Subjects.heartbeat("node-e"), "{not json");
    nc.publish(Subjects.heartbeat("node-e"), JSON.stringify({ v: 1, node: "node-e" }));
    await expect
      .poll(async () => (await deadLetters()).filter((d) => d.subject === Subjects.heartbeat("node-e")).map((d) => d.reason), {
        timeout: 5_000,
      })
      .toEqual(["not-json", "schema"]);
    const [notJson] = (await deadLetters()).filter((d) => d.subject === Subjects.heartbeat("node-e"));
    expect(notJson!.payload).toBe("{not json");
    expect(await events("node-e")).toEqual([]);
  });

  it("keeps serving after bad input", async () => {
    const reply = await nc.request(Subjects.heartbeat("node-f"), JSON.stringify(heartbeat("node-f")), { timeout: 2_000 });
    expect(HeartbeatAck.parse(reply.json()).node).toBe("node-f");
    await expect.poll(async () => (await events("node-f")).map((e) => e.type), { timeout: 5_000 }).toContain("node.joined");
  });

  const contract = (membershipVersion: number): AgentContract => ({
    timing: { controlPlaneTimeoutMs: 5_000, peerRoundMs: 2_000, watchdogTimeoutMs: 10_000, marginMs: 5_000 },
    heartbeatIntervalMs: 1_000,
    watchdog: { kind: "hardware", timeoutMs: 10_000 },
    membershipVersion,
  });

  it("attaches the membership view to the ack of a heartbeat that reports an older one, and only the version otherwise", async () => {
    const ask = async (hb: Heartbeat) =>
      HeartbeatAck.parse((await nc.request(Subjects.heartbeat(hb.node), JSON.stringify(hb), { timeout: 2_000 })).json());
    const none = await ask(heartbeat("node-m"));
    expect(none.membership?.version).toBe(2);
    expect(none.membership?.view?.members.map((m) => m.node)).toEqual(["known.node", "node-m", "seeded-node"]);
    const old = await ask(heartbeat("node-m", { contract: contract(1) }));
    expect(old.membership?.view?.version).toBe(2);
    const current = await ask(heartbeat("node-m", { contract: contract(2) }));
    expect(current.membership).toEqual({ version: 2 });
    // An agent ahead of this detector is never sent an older view.
    expect((await ask(heartbeat("node-m", { contract: contract(3) }))).membership).toEqual({ version: 2 });
  });

  it("answers a stopping agent only once the withdrawal of its contract is stored", async () => {
    await nc.request(Subjects.heartbeat("node-s"), JSON.stringify(heartbeat("node-s", { contract: contract(2) })), { timeout: 2_000 });
    const withdrawn = { ...contract(2), watchdog: { kind: "none" as const, timeoutMs: 0 }, withdrawn: true as const };
    const reply = HeartbeatAck.parse(
      (
        await nc.request(Subjects.heartbeat("node-s"), JSON.stringify(heartbeat("node-s", { contract: withdrawn, stopping: true })), {
          timeout: 2_000,
        })
      ).json(),
    );
    expect(reply.withdrawn).toBe(true);
    const stored = await events("node-s");
    expect(stored.map((e) => e.type)).toEqual(["node.joined", "contract.reported"]);
    expect(stored[1]!.data).toMatchObject({ contract: { withdrawn: true, watchdog: { kind: "none" } } });
  });

  it("does not seed a forgotten node, and brings one back when the engine forgets it and its agent is heard again", async () => {
    await new Promise((r) => setTimeout(r, 3 * TIMEOUT_MS));
    expect(await events("gone-node")).toEqual([]);
    await nc.request(Subjects.heartbeat("node-r"), JSON.stringify(heartbeat("node-r")), { timeout: 2_000 });
    const nodes = await new Kvm(nc).open(Buckets.nodes);
    await nodes.put(
      nodeToken("node-r"),
      JSON.stringify({ node: "node-r", path: "forgotten", context: { bootId: "boot-node-r", epoch: 0 } }),
    );
    await new Promise((r) => setTimeout(r, 200));
    await nc.request(Subjects.heartbeat("node-r"), JSON.stringify(heartbeat("node-r")), { timeout: 2_000 });
    await expect.poll(async () => (await events("node-r")).map((e) => e.type), { timeout: 5_000 }).toEqual(["node.joined", "node.joined"]);
  });
});
