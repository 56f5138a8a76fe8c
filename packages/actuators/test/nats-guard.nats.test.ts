import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, createLogger, publishCommand, startNatsServer, type NatsServer } from "@fenceline/bus";
import { CommandResult, Policy, systemClock, type NodeEventOf } from "@fenceline/contracts";
import { Buckets, Streams, provisionStreams } from "@fenceline/streams";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createActuator } from "../src/actuator.js";
import type { FleetView } from "../src/fleet-guard.js";
import { createGuardHandlers, type BudgetStore } from "../src/guard-handlers.js";
import { createKvBudgetStore } from "../src/nats/kv-budget-store.js";
import { runActuator } from "../src/nats/run-actuator.js";
import { command } from "./helpers.js";
import { readStream } from "../../../test/support/read-stream.js";

const log = createLogger("guard-test", { level: "silent" });
const policy = Policy.parse({ fleet: { maxUnhealthy: 1 } });
const view = () => ({ fleetSize: 10, healthy: 10, majoritySince: 0 }) as FleetView;

let server: NatsServer;
const connections: NatsConnection[] = [];

beforeAll(async () => {
  server = await startNatsServer();
  for (let i = 0; i < 3; i++) connections.push(await connectNats(server.url, { name: `guard-test-${i}` }));
  await provisionStreams(connections[0]!);
});
afterAll(async () => {
  for (const nc of connections) await nc.close();
  await server?.stop();
});

/** The KV store, slowed between read and write so two guards really overlap. */
function slowStore(store: BudgetStore, stats: { conflicts: number }): BudgetStore {
  return {
    async read() {
      const r = await store.read();
      await new Promise((resolve) => setTimeout(resolve, 30));
      return r;
    },
    async write(budget, revision) {
      try {
        return await store.write(budget, revision);
      } catch (err) {
        stats.conflicts++;
        throw err;
      }
    },
  };
}

async function results(nc: NatsConnection): Promise<Array<NodeEventOf<"command.result">>> {
  return (await readStream(nc, Streams.events))
    .map((m) => m.data as { type: string })
    .filter((e) => e.type === "command.result")
    .map((e) => CommandResult.parse(e));
}

describe("fleet guard on NATS: KV budget store and two guard actuators", () => {
  it("grants exactly one of three simultaneous slot.acquire commands when maxUnhealthy is 1", async () => {
    const [nc1, nc2, client] = connections as [NatsConnection, NatsConnection, NatsConnection];
    const stats = { conflicts: 0 };
    const handledBy: Record<string, string> = {};
    const guards = await Promise.all(
      [nc1, nc2].map(async (nc, i) => {
        const store = slowStore(createKvBudgetStore(await new Kvm(nc).open(Buckets.fleet)), stats);
        const handlers = createGuardHandlers({ store, view, policy, clock: systemClock });
        const acquire = handlers["slot.acquire"]!;
        handlers["slot.acquire"] = (c, ctx) => {
          handledBy[c.node] = `guard-${i}`;
          return acquire(c, ctx);
        };
        return runActuator({ nc, actuator: createActuator({ name: "guard", handlers, clock: systemClock }), log });
      }),
    );
    try {
      const now = Date.now();
      const commands = ["node-1", "node-2", "node-3"].map((node) =>
        command("slot.acquire", { controlPlane: false }, { node, now, id: `acquire-${node}` }),
      );
      const js = jetstream(client);
      await Promise.all(commands.map((c) => publishCommand(js, c)));

      await expect.poll(async () => (await results(client)).length, { timeout: 10_000 }).toBe(3);
      const all = await results(client);
      expect(all.map((r) => r.id).sort()).toEqual(commands.map((c) => `result:${c.id}`).sort());
      const granted = all.filter((r) => r.data.ok);
      const refused = all.filter((r) => !r.data.ok);
      expect(granted).toHaveLength(1);
      expect(refused).toHaveLength(2);
      for (const r of refused) {
        expect(r.data.reason).toBe(`1 nodes already in remediation (${granted[0]!.node}), maxUnhealthy 1 allows 1`);
      }

      // The budget in FL_FLEET holds exactly the granted node.
      const kvStore = createKvBudgetStore(await new Kvm(client).open(Buckets.fleet));
      const { budget } = await kvStore.read();
      expect(Object.keys(budget.slots)).toEqual([granted[0]!.node]);
      expect(Object.keys(handledBy).sort()).toEqual(["node-1", "node-2", "node-3"]);

      // Releasing it lets one of the others in.
      await publishCommand(js, command("slot.release", {}, { node: granted[0]!.node, now: Date.now(), id: "release-1" }));
      await expect
        .poll(async () => (await results(client)).find((r) => r.id === "result:release-1")?.data.ok, { timeout: 10_000 })
        .toBe(true);
      const next = refused[0]!.node;
      await publishCommand(js, command("slot.acquire", { controlPlane: false }, { node: next, now: Date.now(), id: "acquire-again" }));
      await expect
        .poll(async () => (await results(client)).find((r) => r.id === "result:acquire-again")?.data.ok, { timeout: 10_000 })
        .toBe(true);
      expect(Object.keys((await kvStore.read()).budget.slots)).toEqual([next]);
    } finally {
      await Promise.all(guards.map((g) => g.stop()));
    }
  });

  it("never exceeds maxUnhealthy with two guards on two connections racing on the KV budget", async () => {
    const kv = await new Kvm(connections[0]!).open(Buckets.fleet);
    await kv.purge("budget");
    const stats = { conflicts: 0 };
    const guards = await Promise.all(
      [connections[0]!, connections[1]!].map(async (nc) => {
        const store = slowStore(createKvBudgetStore(await new Kvm(nc).open(Buckets.fleet)), stats);
        return createActuator({
          name: "guard",
          handlers: createGuardHandlers({ store, view, policy, clock: systemClock }),
          clock: systemClock,
        });
      }),
    );
    const now = Date.now();
    const nodes = Array.from({ length: 10 }, (_, i) => `racer-${i}`);
    const dispositions = await Promise.all(
      nodes.map((node, i) => guards[i % 2]!.execute(command("slot.acquire", { controlPlane: false }, { node, now }))),
    );
    const granted = dispositions.filter((d) => d.kind === "result" && d.event.type === "command.result" && d.event.data.ok);
    expect(granted).toHaveLength(1);
    // They really raced: every one read the empty budget, all but one lost the compare-and-set.
    expect(stats.conflicts).toBeGreaterThanOrEqual(1);
    const { budget } = await createKvBudgetStore(kv).read();
    expect(Object.keys(budget.slots)).toHaveLength(1);
  });

  it("KV budget store: a write with a stale revision is a concurrency conflict", async () => {
    const kv = await new Kvm(connections[0]!).open(Buckets.fleet);
    await kv.purge("budget").catch(() => {});
    const a = createKvBudgetStore(kv);
    const b = createKvBudgetStore(await new Kvm(connections[1]!).open(Buckets.fleet));
    const first = await a.read();
    const rev = await a.write({ v: 1, slots: { x: { since: 1, controlPlane: false } } }, first.revision);
    await expect(b.write({ v: 1, slots: {} }, first.revision)).rejects.toMatchObject({ code: "CONCURRENCY_CONFLICT" });
    const now = await b.read();
    expect(now.revision).toBe(rev);
    expect(now.budget.slots).toHaveProperty("x");
    await b.write({ v: 1, slots: {} }, now.revision);
    await expect(a.write({ v: 1, slots: {} }, rev)).rejects.toMatchObject({ code: "CONCURRENCY_CONFLICT" });
  });
});

describe("the fleet budget read back from FL_FLEET", () => {
  it("is parsed: an invalid budget is never taken as empty; the guard refuses, naming it, until it is fixed", async () => {
    const kv = await new Kvm(connections[0]!).open(Buckets.fleet);
    const guard = createActuator({
      name: "guard",
      handlers: createGuardHandlers({ store: createKvBudgetStore(kv), view, policy, clock: systemClock }),
      clock: systemClock,
    });
    const acquire = (node: string) => guard.execute(command("slot.acquire", { controlPlane: false }, { node, now: Date.now() }));
    for (const value of [
      "{not json",
      JSON.stringify({ v: 1, slots: { "node-1": { since: "yesterday" } } }),
      JSON.stringify({ v: 2, slots: {} }),
    ]) {
      await kv.put("budget", value);
      const d = await acquire("node-9");
      expect(d.kind === "result" && d.event.type === "command.result" && d.event.data).toMatchObject({
        ok: false,
        reason: expect.stringContaining('FL_FLEET "budget" is not a valid fleet budget'),
      });
    }
    await kv.put("budget", JSON.stringify({ v: 1, slots: {} }));
    const d = await acquire("node-9");
    expect(d.kind === "result" && d.event.type === "command.result" && d.event.data.ok).toBe(true);
  });
});
