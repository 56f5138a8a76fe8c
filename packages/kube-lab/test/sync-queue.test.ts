import { describe, expect, it } from "vitest";
import { createSyncQueue } from "../src/sync-queue.js";

const tick = () => new Promise<void>((r) => setImmediate(r));

/** A sync that waits until the test lets it finish, recording what ran. */
function gatedSync() {
  const runs: string[] = [];
  const gates: Array<() => void> = [];
  let running = 0;
  let mostAtOnce = 0;
  const sync = async (key: string) => {
    runs.push(key);
    running += 1;
    mostAtOnce = Math.max(mostAtOnce, running);
    await new Promise<void>((r) => gates.push(r));
    running -= 1;
  };
  return { sync, runs, release: () => gates.shift()?.(), mostAtOnce: () => mostAtOnce };
}

describe("createSyncQueue", () => {
  it("runs one sync at a time per key, and once more after it however often the key was asked for meanwhile", async () => {
    const g = gatedSync();
    const queue = createSyncQueue({ sync: g.sync, active: () => true, onError: () => {} });
    queue("a");
    queue("a");
    queue("a");
    queue("b");
    await tick();
    expect(g.runs).toEqual(["a", "b"]);
    g.release(); // a's first sync ends: it runs again, once
    await tick();
    expect(g.runs).toEqual(["a", "b", "a"]);
    g.release();
    g.release();
    await tick();
    expect(g.runs).toEqual(["a", "b", "a"]);
    expect(g.mostAtOnce()).toBe(2); // a and b, never a twice
    queue("a"); // idle again: runs at once
    await tick();
    expect(g.runs).toEqual(["a", "b", "a", "a"]);
    g.release();
  });

  it("reports a failed sync and syncs the key again when asked; once inactive it neither repeats nor reports", async () => {
    let fail = true;
    let active = true;
    const errors: string[] = [];
    const runs: string[] = [];
    const queue = createSyncQueue({
      sync: async (key) => {
        runs.push(key);
        await tick();
        if (fail) throw new Error(`${key} broke`);
      },
      active: () => active,
      onError: (key, err) => errors.push(`${key}: ${err.message}`),
    });
    queue("a");
    await tick();
    await tick();
    expect(errors).toEqual(["a: a broke"]);
    queue("a");
    queue("a"); // asked for during the sync: it would run again...
    active = false; // ...but the syncer stops meanwhile
    await tick();
    await tick();
    expect(runs).toEqual(["a", "a"]);
    expect(errors).toEqual(["a: a broke"]);
    fail = false;
    active = true;
    queue("a");
    await tick();
    await tick();
    expect(runs).toEqual(["a", "a", "a"]);
  });
});
