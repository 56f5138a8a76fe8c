import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, createLogger, openMembershipStore, startNatsServer, watchMembership, type NatsServer } from "@fenceline/bus";
import { nodeToken, type MembershipView } from "@fenceline/contracts";
import { Buckets, provisionStreams } from "@fenceline/streams";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runMembershipKeeper } from "../src/run-membership-keeper.js";

const log = createLogger("membership-keeper-test", { level: "silent" });
let server: NatsServer;
let nc: NatsConnection;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, get: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 5_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await sleep(25);
  }
}

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connectNats(server.url, { name: "membership-keeper-test" });
  await provisionStreams(nc);
});
afterAll(async () => {
  await nc?.close();
  await server?.stop();
});

const put = async (node: string, path: string, peerUrl?: string) => {
  const kv = await new Kvm(nc).open(Buckets.nodes);
  await kv.put(
    nodeToken(node),
    JSON.stringify({ node, path, context: { bootId: `boot-${node}`, epoch: 0, ...(peerUrl ? { peerUrl } : {}) } }),
  );
};

describe("runMembershipKeeper on NATS", () => {
  it("writes the first view from the records already stored, then one per join, leave or move; a watcher sees every version", async () => {
    for (let i = 1; i <= 5; i++) await put(`w-${i}.example`, "healthy", `http://10.0.0.${i}:9797`);
    const keeper = await runMembershipKeeper({ nc, witness: true, log });
    const store = await openMembershipStore(nc);
    const seen: MembershipView[] = [];
    const watch = await watchMembership(nc, { log, onView: (v) => seen.push(v) });
    try {
      // Never a half-read bucket: the first view holds all five.
      const first = (await store.read()).view!;
      expect(first.version).toBe(1);
      expect(first.members.map((m) => m.node)).toEqual(["w-1.example", "w-2.example", "w-3.example", "w-4.example", "w-5.example"]);
      expect(first.members[0]!.peerUrl).toBe("http://10.0.0.1:9797");

      await put("w-3.example", "suspect.waiting", "http://10.0.0.3:9797");
      await put("w-6.example", "healthy", "http://10.0.0.6:9797");
      const grown = await until(
        "w-6 joins",
        async () => (await store.read()).view!,
        (v) => v.members.length === 6,
      );
      expect(grown.version).toBe(2);

      await put("w-2.example", "forgotten");
      const shrunk = await until(
        "w-2 leaves",
        async () => (await store.read()).view!,
        (v) => v.members.length === 5,
      );
      expect(shrunk.version).toBe(3);
      expect(shrunk.members.map((m) => m.node)).not.toContain("w-2.example");

      await put("w-1.example", "healthy", "http://10.0.1.1:9797");
      const moved = await until(
        "w-1 moves",
        async () => (await store.read()).view!,
        (v) => v.version === 4,
      );
      expect(moved.members.find((m) => m.node === "w-1.example")?.peerUrl).toBe("http://10.0.1.1:9797");

      await watch.ready;
      await until(
        "the watcher",
        () => watch.current()?.version,
        (v) => v === 4,
      );
      expect(watch.versions()).toEqual([1, 2, 3, 4]);
      expect(watch.view(2)?.members).toHaveLength(6);
      expect(seen.map((v) => v.version)).toEqual([1, 2, 3, 4]);
    } finally {
      await watch.stop();
      await keeper.stop();
    }
  });

  it("a second keeper started later agrees: no new version for the same fleet", async () => {
    const store = await openMembershipStore(nc);
    const before = (await store.read()).view!.version;
    const keeper = await runMembershipKeeper({ nc, witness: true, log });
    try {
      await sleep(200);
      expect((await store.read()).view!.version).toBe(before);
    } finally {
      await keeper.stop();
    }
  });
});
