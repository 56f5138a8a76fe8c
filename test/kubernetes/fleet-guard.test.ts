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
  });

  it.each([1, 2])("maxUnhealthy 1: three crashed nodes are remediated one at a time (%i control planes)", async (controlPlanes) => {
    sim = await startSimK8s({
      nodes: 8,
      statefulReplicas: 3,
      controlPlanes,
      policy: testPolicy({ fleet: { maxUnhealthy: 1, retryMs: 500 }, remediation: [{ strategy: "ResourceDeletion", timeoutMs: 10_000 }] }),
    });
    const s = sim;
    let maxSlots = 0;
    const holders = new Set<string>();
    const stopWatch = await s.watchBudget((slots) => {
      maxSlots = Math.max(maxSlots, slots.length);
      slots.forEach((n) => holders.add(n));
    });

    const victims = ["db-0", "db-1", "db-2"].map((r) => s.nodeOf(r));
    expect(new Set(victims).size).toBe(3);
    await Promise.all(victims.map((v) => s.fleet.crash(v)));

    // Each machine is powered on again once its workloads were moved off it.
    const booted = new Set<string>();
    const done = () => victims.every((v) => booted.has(v) && s.latest(v) === "healthy");
    const until = Date.now() + 40_000;
    while (!done()) {
      if (Date.now() > until) throw new Error(`not all remediated:\n${s.reasons().slice(-40).join("\n")}`);
      for (const v of victims) {
        if (!booted.has(v) && s.timeline(v).some((l) => l.includes("workloads moved off the node"))) {
          booted.add(v);
          await s.fleet.crash(v, 100);
        }
      }
      await sleep(25);
    }
    stopWatch();

    expect(maxSlots).toBe(1);
    expect([...holders].sort()).toEqual([...victims].sort());
    // One after the other: each remediation starts after the previous node rejoined.
    const spans = victims
      .map((v) => {
        const records = s.audit.filter((r) => r.node === v).sort((a, b) => a.seq - b.seq);
        const start = records.find((r) => r.changed && r.to === "fencing")!.seq;
        const end = records.find((r) => r.changed && r.to === "healthy" && r.seq > start)!.seq;
        return { v, start, end };
      })
      .sort((a, b) => a.start - b.start);
    for (let i = 1; i < spans.length; i++) expect(spans[i]!.start).toBeGreaterThan(spans[i - 1]!.end);
    // The two that waited were told why.
    for (const { v } of spans.slice(1)) {
      const refusals = s.timeline(v).filter((l) => l.includes("fleet guard refused a remediation slot"));
      expect(refusals.length).toBeGreaterThan(0);
      expect(refusals[0]).toMatch(/maxUnhealthy 1 allows 1/);
    }
    for (const r of ["db-0", "db-1", "db-2"]) expect(s.cluster.replicas().find((x) => x.replica === r)!.runningOn).toHaveLength(1);
    expect(s.violations).toEqual([]);
  });
});
