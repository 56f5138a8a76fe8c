import { afterEach, describe, expect, it } from "vitest";
import { sleep, startSimK8s, testPolicy, type SimK8s } from "./harness.js";

/**
 * The storm guard: three nodes fail at once with maxUnhealthy 1. They are remediated one at a
 * time through the shared KV budget; the others wait in suspect and the audit says why. With
 * two engine + actuator sets on the same NATS server the limit holds across them.
 */
describe("fleet guard", () => {
  let sim: SimK8s | undefined;
  afterEach(async () => {
    await sim?.stop();
    sim = undefined;
  }, 90_000);

  it.each([1, 2])("maxUnhealthy 1: three crashed nodes are remediated one at a time (%i control planes)", async (controlPlanes) => {
    sim = await startSimK8s({
      nodes: 8,
      statefulReplicas: 3,
      controlPlanes,
      policy: testPolicy({ fleet: { maxUnhealthy: 1, retryMs: 500 }, remediation: [{ strategy: "ResourceDeletion", timeoutMs: 10_000 }] }),
    });
    const s = sim;
    // Every revision of the shared budget (FL_FLEET), as both guards wrote it.
    const revisions: string[][] = [];
    const stopWatch = await s.watchBudget((slots) => revisions.push(slots));

    const victims = ["db-0", "db-1", "db-2"].map((r) => s.nodeOf(r));
    expect(new Set(victims).size).toBe(3);
    await Promise.all(victims.map((v) => s.fleet.crash(v)));

    // Each machine is powered on again once its workloads were moved off it (its saved state).
    const booted = new Set<string>();
    const done = () => victims.every((v) => booted.has(v) && s.latest(v) === "healthy");
    const until = Date.now() + 75_000;
    while (!done()) {
      if (Date.now() > until) {
        const detail = victims.map((v) => `${v}: ${s.latest(v)} booted=${booted.has(v)}\n  ${s.timeline(v).slice(-12).join("\n  ")}`).join("\n");
        throw new Error(`not all remediated; budget revisions ${JSON.stringify(revisions)}\n${detail}`);
      }
      for (const v of victims) {
        if (!booted.has(v) && s.latest(v) === "down") {
          booted.add(v);
          await s.fleet.crash(v, 100);
        }
      }
      await sleep(25);
    }
    stopWatch();

    // Never two slots at once; each victim held one, one after the other, once.
    expect(Math.max(...revisions.map((r) => r.length))).toBe(1);
    const order = revisions.filter((r) => r.length > 0).map((r) => r[0]!).filter((n, i, all) => i === 0 || all[i - 1] !== n);
    expect([...order].sort()).toEqual([...victims].sort());
    // The two that waited were told why.
    for (const v of order.slice(1)) {
      const refusals = s.timeline(v).filter((l) => l.includes("fleet guard refused a remediation slot"));
      expect(refusals.length).toBeGreaterThan(0);
      expect(refusals[0]).toMatch(/maxUnhealthy 1 allows 1/);
    }
    for (const r of ["db-0", "db-1", "db-2"]) expect(s.cluster.replicas().find((x) => x.replica === r)!.runningOn).toHaveLength(1);
    expect(s.violations).toEqual([]);
  }, 90_000);
});
