import { describe, expect, it } from "vitest";
import { createMembershipKeeper, createMemoryMembershipStore, nextMembershipView } from "../src/membership-keeper.js";

describe("nextMembershipView", () => {
  it("makes every node that is not forgotten a member, sorted, with its peer URL", () => {
    const view = nextMembershipView(
      null,
      [
        { node: "w-2", path: "suspect.waiting", peerUrl: "http://10.0.0.2:9797" },
        { node: "w-1", path: "healthy", peerUrl: "http://10.0.0.1:9797" },
        { node: "w-3", path: "forgotten" },
        { node: "k8s-only", path: "healthy" },
      ],
      true,
    );
    expect(view).toEqual({
      v: 1,
      version: 1,
      witness: true,
      members: [{ node: "k8s-only" }, { node: "w-1", peerUrl: "http://10.0.0.1:9797" }, { node: "w-2", peerUrl: "http://10.0.0.2:9797" }],
    });
  });

  it("gives no new version when nothing that matters changed, and the next one when it did", () => {
    const first = nextMembershipView(null, [{ node: "a", path: "healthy" }], true)!;
    expect(nextMembershipView(first, [{ node: "a", path: "fencing" }], true)).toBeNull();
    expect(nextMembershipView(first, [{ node: "a", path: "healthy", peerUrl: "http://a" }], true)?.version).toBe(2);
    expect(nextMembershipView(first, [{ node: "a", path: "healthy" }], false)?.witness).toBe(false);
    expect(nextMembershipView(first, [{ node: "a", path: "forgotten" }], true)?.members).toEqual([]);
  });
});

describe("membership keeper", () => {
  it("writes a view when a node joins, leaves or moves, and none for a change of state", async () => {
    const store = createMemoryMembershipStore();
    const keeper = createMembershipKeeper({ store, witness: true });
    expect(keeper.observe({ node: "a", path: "healthy", peerUrl: "http://a" })).toBe(true);
    expect(keeper.observe({ node: "b", path: "healthy" })).toBe(true);
    expect((await keeper.sync())?.version).toBe(1);
    expect(keeper.observe({ node: "a", path: "suspect.waiting", peerUrl: "http://a" })).toBe(false);
    expect(await keeper.sync()).toBeNull();
    expect(keeper.observe({ node: "b", path: "forgotten" })).toBe(true);
    expect(await keeper.sync()).toMatchObject({ version: 2, members: [{ node: "a" }] });
    expect(keeper.observe({ node: "a", path: "healthy", peerUrl: "http://a2" })).toBe(true);
    expect(await keeper.sync()).toMatchObject({ version: 3, members: [{ node: "a", peerUrl: "http://a2" }] });
    expect(keeper.remove("a")).toBe(true);
    expect(await keeper.sync()).toMatchObject({ version: 4, members: [] });
    expect(store.history().map((v) => v.version)).toEqual([1, 2, 3, 4]);
  });

  it("two keepers on one store make one version follow another, whoever writes", async () => {
    const store = createMemoryMembershipStore();
    const a = createMembershipKeeper({ store, witness: true });
    const b = createMembershipKeeper({ store, witness: true });
    for (const k of [a, b]) {
      k.observe({ node: "x", path: "healthy" });
      k.observe({ node: "y", path: "healthy" });
    }
    await Promise.all([a.sync(), b.sync()]);
    expect(store.history().map((v) => v.version)).toEqual([1]);
    b.observe({ node: "z", path: "healthy" });
    a.observe({ node: "z", path: "healthy" });
    await Promise.all([a.sync(), b.sync()]);
    expect(store.history().map((v) => [v.version, v.members.length])).toEqual([
      [1, 2],
      [2, 3],
    ]);
  });

  it("a keeper whose records lag waits until they caught up: it never writes a view without a member it has not read yet", async () => {
    const store = createMemoryMembershipStore();
    const a = createMembershipKeeper({ store, witness: true });
    for (const node of ["x", "y", "z"]) a.observe({ node, path: "healthy" });
    await a.sync();
    // b's watch has delivered x and y so far; z is still on its way (caughtUp delivers it).
    const delivered: string[] = [];
    const b = createMembershipKeeper({
      store,
      witness: true,
      caughtUp: async () => {
        if (!delivered.includes("z")) b.observe({ node: "z", path: "healthy" });
        delivered.push("z");
      },
    });
    b.observe({ node: "x", path: "healthy" });
    b.observe({ node: "y", path: "healthy" });
    b.observe({ node: "x", path: "healthy", peerUrl: "http://x" });
    expect(await b.sync()).toMatchObject({ version: 2, members: [{ node: "x", peerUrl: "http://x" }, { node: "y" }, { node: "z" }] });
    expect(delivered).toEqual(["z"]);
    expect(store.history().map((v) => v.members.length)).toEqual([3, 3]);
  });

  it("folds changes made during a write into one more write", async () => {
    const store = createMemoryMembershipStore();
    const keeper = createMembershipKeeper({ store, witness: false });
    keeper.observe({ node: "a", path: "healthy" });
    const first = keeper.sync();
    keeper.observe({ node: "b", path: "healthy" });
    const second = keeper.sync();
    await Promise.all([first, second]);
    expect(store.current()?.members).toEqual([{ node: "a" }, { node: "b" }]);
    expect(store.history().map((v) => v.version)).toEqual(store.history().map((_, i) => i + 1));
  });
});
