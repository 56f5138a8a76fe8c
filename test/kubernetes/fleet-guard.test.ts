import { readFileSync } from "node:fs";
import { describe, expect, inject, it } from "vitest";
import { startRealK8s, sleep, testPolicy } from "./harness.js";

const zoneState = (zone: string, state: string) => {
  const log = readFileSync(inject("kubeTest").kube.logs.controllerManager, "utf8");
  return new RegExp(`zone is now in new state" zone="[^"]*${zone}" newState="${state}"`).test(log);
};

/**
 * The fleet guard on the real control plane, and what Fenceline does when the node lifecycle
 * controller's zone-disruption rule kicks in. Each test's nodes are a zone of their own.
 */
describe.concurrent("fleet guard on the real control plane", () => {
  it.each([1, 2])(
    "maxUnhealthy 1: three crashed nodes are remediated one at a time (%i control planes)",
    async (controlPlanes) => {
      const s = await startRealK8s({
        name: `guard-${controlPlanes}`,
        nodes: 8,
        statefulReplicas: 3,
        controlPlanes,
        policy: testPolicy({
          fleet: { maxUnhealthy: 1, retryMs: 500 },
          remediation: [{ strategy: "OutOfServiceTaint", timeoutMs: 20_000 }],
        }),
      });
      try {
        const revisions: string[][] = [];
        const stopWatch = await s.watchBudget((slots) => revisions.push(slots));
        const victims = await Promise.all(["db-0", "db-1", "db-2"].map((r) => s.nodeOf(r)));
        expect(new Set(victims).size).toBe(3);
        await Promise.all(victims.map((v) => s.fleet.crash(v)));
        // Each machine is powered on again once its workloads were moved off it.
        const booted = new Set<string>();
        const done = () => victims.every((v) => booted.has(v) && s.latest(v) === "healthy");
        const until = Date.now() + 150_000;
        while (!done()) {
          if (Date.now() > until) throw new Error(`not all remediated; budget revisions ${JSON.stringify(revisions)}\n${s.explain()}`);
          for (const v of victims) {
            if (!booted.has(v) && s.latest(v) === "down") {
              booted.add(v);
              await s.fleet.crash(v, 100);
            }
          }
          await sleep(50);
        }
        stopWatch();
        expect(Math.max(...revisions.map((r) => r.length))).toBe(1);
        const order = revisions
          .filter((r) => r.length > 0)
          .map((r) => r[0]!)
          .filter((n, i, all) => i === 0 || all[i - 1] !== n);
        expect([...order].sort()).toEqual([...victims].sort());
        for (const v of order.slice(1)) {
          const refusals = s.timeline(v).filter((l) => l.includes("fleet guard refused a remediation slot"));
          expect(refusals.length).toBeGreaterThan(0);
          expect(refusals[0]).toMatch(/maxUnhealthy 1 allows 1/);
        }
        await s.waitFor("every replica running once", () => ["db-0", "db-1", "db-2"].every((r) => s.runningOn(r).length === 1));
        expect(s.violations).toEqual([]);
      } finally {
        await s.stop();
      }
    },
    240_000,
  );

  it("zone disruption: 3 of 5 nodes down puts the zone in PartialDisruption (Kubernetes stops evicting); Fenceline's guard holds back too until a majority is back, then moves the replica", async () => {
    const s = await startRealK8s({
      name: "zone",
      nodes: 5,
      policy: testPolicy({ fleet: { retryMs: 1_000 }, remediation: [{ strategy: "OutOfServiceTaint", timeoutMs: 20_000 }] }),
    });
    try {
      const last = await s.nodeOf("db-0");
      const others = s.names.filter((n) => n !== last).slice(0, 2);
      const victims = [...others, last];
      await Promise.all(victims.map((v) => s.fleet.crash(v)));
      // Fenceline: 2 healthy of 5 is below minHealthy 51%: no slot for anyone (a partition looks the same).
      await s.waitFor(
        "every victim refused a slot",
        () => victims.every((v) => s.timeline(v).some((l) => l.includes("fleet guard refused a remediation slot"))),
        30_000,
      );
      // Kubernetes, ~50 s later: the node lifecycle controller sees 60 % of the zone NotReady.
      await s.waitFor("the zone in PartialDisruption", () => zoneState(s.name, "PartialDisruption"), 120_000);
      const refusal = s.timeline(last).find((l) => l.includes("fleet guard refused a remediation slot"))!;
      expect(refusal).toMatch(/no healthy majority( in membership view v\d+ \([^)]*\))?: 2 of 5 nodes healthy, 2 of 5 votes/);
      expect(victims.map((v) => s.latest(v)?.split(".")[0])).toEqual(["suspect", "suspect", "suspect"]);
      // Nothing moved: db-0 is still bound to its dead node, running nowhere.
      expect(await s.nodeOf("db-0")).toBe(last);
      expect(s.runningOn("db-0")).toEqual([]);

      // Two machines come back: a healthy majority again; the zone returns to Normal and the last victim is remediated.
      for (const v of others) await s.fleet.crash(v, 100);
      await s.waitFor(
        "db-0 running on another node",
        async () => {
          const node = await s.nodeOf("db-0");
          return node !== last && s.runningOn("db-0").length === 1 && s.runningOn("db-0")[0] === node;
        },
        90_000,
      );
      await s.waitFor("the zone back to Normal", () => zoneState(s.name, "Normal"), 60_000);
      expect(s.timeline(last).join("\n")).toContain("remediation step 1/1: OutOfServiceTaint");
      expect(s.violations).toEqual([]);
    } finally {
      await s.stop();
    }
  }, 300_000);
});
