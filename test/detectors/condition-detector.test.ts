import { describe, expect, it } from "vitest";
import type { NodeEvent } from "@fenceline/contracts";
import { createConditionDetector, defaultConditionRules, labelMatcher } from "@fenceline/detectors";
import type { ClusterNode } from "@fenceline/kubernetes";
import { VirtualClock } from "@fenceline/testing";

const T0 = 1_700_000_000_000;

function node(name: string, ready: string, since: number, labels: Record<string, string> = {}, rv = "1"): ClusterNode {
  return {
    name,
    resourceVersion: rv,
    labels,
    conditions: [{ type: "Ready", status: ready, lastTransitionTime: since, reason: "x" }],
    taints: [],
    unschedulable: false,
  };
}

const brief = (events: NodeEvent[]) =>
  events.map((e) => {
    if (e.type === "signal.unhealthy") return `${e.node} unhealthy ${e.data.signal} since+${e.data.since - T0}`;
    if (e.type === "signal.healthy") return `${e.node} healthy ${e.data.signal}`;
    if (e.type === "operator.pause" || e.type === "operator.resume") return `${e.node} ${e.type}: ${e.data.reason}`;
    return `${e.node} ${e.type}`;
  });

describe("condition detector (virtual clock)", () => {
  it("reports a node whose Ready condition is Unknown for the rule's duration, from the condition's start", () => {
    const clock = new VirtualClock(T0);
    const d = createConditionDetector({ rules: defaultConditionRules(10_000) });
    expect(brief(d.observe(node("n1", "True", T0 - 60_000), clock.now()))).toEqual(["n1 healthy condition:Ready"]);
    clock.advance(1_000);
    // The node controller saw it stop posting 2 s ago.
    expect(d.observe(node("n1", "Unknown", clock.now() - 2_000, {}, "2"), clock.now())).toEqual([]);
    expect(d.nextDue()).toBe(T0 - 1_000 + 10_000);
    clock.advance(7_000);
    expect(d.tick(clock.now())).toEqual([]);
    clock.advance(1_000);
    const events = d.tick(clock.now());
    expect(brief(events)).toEqual(["n1 unhealthy condition:Ready since+-1000"]);
    expect(events[0]!.id).toBe(`cond:n1:Ready:unhealthy:${T0 - 1_000}`);
    expect(d.tick(clock.now() + 5_000)).toEqual([]);
    // Back: one healthy signal.
    clock.advance(3_000);
    expect(brief(d.observe(node("n1", "True", clock.now(), {}, "3"), clock.now()))).toEqual(["n1 healthy condition:Ready"]);
    expect(d.nextDue()).toBeNull();
  });

  it("does not restart the duration when Ready flips between Unknown and False (Node Health Check PR #274)", () => {
    const clock = new VirtualClock(T0);
    const d = createConditionDetector({ rules: defaultConditionRules(10_000) });
    d.observe(node("n1", "True", T0 - 60_000), clock.now());
    d.observe(node("n1", "Unknown", T0, {}, "2"), clock.now());
    clock.advance(4_000);
    // Rebooting: the kubelet is back and says NotReady (a new lastTransitionTime).
    expect(d.observe(node("n1", "False", clock.now(), {}, "3"), clock.now())).toEqual([]);
    clock.advance(4_000);
    expect(d.observe(node("n1", "Unknown", clock.now(), {}, "4"), clock.now())).toEqual([]);
    clock.advance(2_000);
    // 10 s after the first Unknown, not 10 s after the last flip.
    expect(brief(d.tick(clock.now()))).toEqual(["n1 unhealthy condition:Ready since+0"]);
    // Further flips say nothing new.
    clock.advance(1_000);
    expect(d.observe(node("n1", "False", clock.now(), {}, "5"), clock.now())).toEqual([]);
    expect(d.state("n1")?.conditions.Ready).toEqual({ since: T0, status: "False", reported: T0 });
  });

  it("recovers silently when the condition clears before its duration", () => {
    const clock = new VirtualClock(T0);
    const d = createConditionDetector({ rules: defaultConditionRules(10_000) });
    d.observe(node("n1", "True", T0 - 60_000), clock.now());
    d.observe(node("n1", "False", T0, {}, "2"), clock.now());
    clock.advance(5_000);
    expect(d.observe(node("n1", "True", clock.now(), {}, "3"), clock.now())).toEqual([]);
    clock.advance(10_000);
    expect(d.tick(clock.now())).toEqual([]);
    // A new episode starts its own duration.
    d.observe(node("n1", "False", clock.now(), {}, "4"), clock.now());
    expect(d.nextDue()).toBe(clock.now() + 10_000);
  });

  it("applies each rule's own duration (False 30 s, Unknown 5 s) and uses the condition's transition time", () => {
    const d = createConditionDetector({
      rules: [
        { type: "Ready", status: "False", durationMs: 30_000 },
        { type: "Ready", status: "Unknown", durationMs: 5_000 },
        { type: "DiskPressure", status: "True", durationMs: 0 },
      ],
    });
    const n: ClusterNode = {
      ...node("n1", "False", T0),
      conditions: [
        { type: "Ready", status: "False", lastTransitionTime: T0 },
        { type: "DiskPressure", status: "True", lastTransitionTime: T0 + 1_000 },
      ],
    };
    expect(brief(d.observe(n, T0 + 6_000))).toEqual(["n1 unhealthy condition:DiskPressure since+1000"]);
    expect(brief(d.tick(T0 + 29_999))).toEqual([]);
    expect(brief(d.tick(T0 + 30_000))).toEqual(["n1 unhealthy condition:Ready since+0"]);
  });

  it("watches only the selected nodes and lets go of a node that leaves the selection", () => {
    const d = createConditionDetector({ rules: defaultConditionRules(0), selector: "pool=workers,!node-role.kubernetes.io/control-plane" });
    expect(d.observe(node("cp", "Unknown", T0, { pool: "workers", "node-role.kubernetes.io/control-plane": "" }), T0)).toEqual([]);
    expect(d.observe(node("other", "Unknown", T0, { pool: "gpu" }), T0)).toEqual([]);
    expect(brief(d.observe(node("w1", "Unknown", T0, { pool: "workers" }), T0))).toEqual(["w1 unhealthy condition:Ready since+0"]);
    expect(brief(d.observe(node("w1", "Unknown", T0, { pool: "gpu" }, "2"), T0 + 1))).toEqual(["w1 healthy condition:Ready"]);
    expect(d.state("w1")).toBeUndefined();
  });

  it("pauses a node labelled for exclusion and resumes it when the label goes; deletion clears its signals and forgets it", () => {
    const d = createConditionDetector({ rules: defaultConditionRules(0) });
    const excluded = { "fenceline.io/exclude-from-remediation": "true" };
    expect(brief(d.observe(node("n1", "True", T0, excluded, "7"), T0))).toEqual([
      "n1 operator.pause: excluded from remediation by label fenceline.io/exclude-from-remediation=true",
      "n1 healthy condition:Ready",
    ]);
    // Still excluded: nothing new; the condition is still tracked (so resuming acts on it).
    expect(brief(d.observe(node("n1", "Unknown", T0 + 1, excluded, "8"), T0 + 1))).toEqual(["n1 unhealthy condition:Ready since+1"]);
    expect(brief(d.observe(node("n1", "Unknown", T0 + 1, {}, "9"), T0 + 2))).toEqual([
      "n1 operator.resume: label fenceline.io/exclude-from-remediation=true removed",
    ]);
    // "false" is not an exclusion; a node seen included at start gets no resume.
    expect(brief(d.observe(node("n2", "True", T0, { "fenceline.io/exclude-from-remediation": "false" }), T0))).toEqual([
      "n2 healthy condition:Ready",
    ]);
    const removed = d.remove("n1", T0 + 3);
    expect(brief(removed)).toEqual(["n1 healthy condition:Ready", "n1 node.forgotten"]);
    // Every detector that saw the same last version gives the deletion the same id.
    expect(removed[1]).toMatchObject({ id: "k8s-deleted:n1:9", data: { reason: "its Node object was deleted from Kubernetes" } });
    // A relist that no longer has n2 forgets it (no signal to clear; it leaves the fleet).
    expect(brief(d.synced(["n3"], T0 + 4))).toEqual(["n2 node.forgotten"]);
    expect(d.state("n2")).toBeUndefined();
    // No longer selected (labels changed) is not gone: no forgetting.
    const u = createConditionDetector({ rules: defaultConditionRules(0), selector: "pool=a" });
    u.observe(node("n4", "True", T0, { pool: "a" }), T0);
    expect(brief(u.observe(node("n4", "True", T0, { pool: "b" }), T0 + 1))).toEqual([]);
  });

  it("gives the same ids to the same facts, so two detectors (or a restart) are deduplicated", () => {
    const a = createConditionDetector({ rules: defaultConditionRules(5_000) });
    const b = createConditionDetector({ rules: defaultConditionRules(5_000) });
    a.observe(node("n1", "Unknown", T0), T0 + 100);
    b.observe(node("n1", "Unknown", T0), T0 + 3_000);
    const ea = a.tick(T0 + 5_000);
    const eb = b.tick(T0 + 5_200);
    expect(ea.map((e) => e.id)).toEqual(eb.map((e) => e.id));
    expect(ea).toHaveLength(1);
  });

  it("label selector matcher", () => {
    const m = labelMatcher("a in (1,2),b notin (3),c,!d,e=5,f!=6");
    expect(m({ a: "1", c: "", e: "5" })).toBe(true);
    expect(m({ a: "3", c: "", e: "5" })).toBe(false);
    expect(m({ a: "1", b: "3", c: "", e: "5" })).toBe(false);
    expect(m({ a: "1", c: "", d: "", e: "5" })).toBe(false);
    expect(m({ a: "1", c: "", e: "5", f: "6" })).toBe(false);
    expect(() => labelMatcher("a b")).toThrow(/unable to parse/);
  });
});
