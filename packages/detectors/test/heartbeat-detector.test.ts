import { NodeEvent, type Heartbeat, type NodeEventOf } from "@fenceline/contracts";
import { describe, expect, it } from "vitest";
import { VirtualClock } from "@fenceline/testing";
import { createHeartbeatDetector } from "../src/heartbeat-detector.js";

const TIMEOUT = 3_000;

function setup(options: { failWhen?: (event: NodeEvent) => boolean } = {}) {
  const clock = new VirtualClock(1_000_000);
  const events: NodeEvent[] = [];
  const attempts: NodeEvent[] = [];
  const detector = createHeartbeatDetector({
    clock,
    timeoutMs: TIMEOUT,
    publish: async (event) => {
      attempts.push(event);
      if (options.failWhen?.(event)) throw new Error("publish failed");
      // Every event the detector produces must be a valid event.
      events.push(NodeEvent.parse(event));
    },
  });
  return { clock, events, attempts, detector };
}

let seq = 0;
function hb(node: string, fields: Partial<Heartbeat> = {}): Heartbeat {
  return { v: 1, node, bootId: "boot-1", incarnation: 1, seq: seq++, sentAt: 0, ...fields };
}

const types = (events: NodeEvent[]) => events.map((e) => e.type);

describe("heartbeat detector", () => {
  it("reports the first heartbeat of a node as node.joined, with host group, control plane and checksums", async () => {
    const { events, detector, clock } = setup();
    await detector.onHeartbeat(hb("n1", { hostGroup: "workers", controlPlane: true, checksums: { app: "abc" } }));
    expect(types(events)).toEqual(["node.joined"]);
    const joined = events[0] as NodeEventOf<"node.joined">;
    expect(joined).toMatchObject({ node: "n1", at: clock.now(), source: "heartbeat-detector" });
    expect(joined.data).toEqual({ bootId: "boot-1", incarnation: 1, hostGroup: "workers", controlPlane: true, checksums: { app: "abc" } });
    expect(detector.known()).toEqual(["n1"]);
  });

  it("reports nothing for further heartbeats of a healthy node", async () => {
    const { events, detector, clock } = setup();
    for (let i = 0; i < 10; i++) {
      await detector.onHeartbeat(hb("n1", { checksums: { app: "abc" } }));
      clock.advance(1_000);
      await detector.tick();
    }
    expect(types(events)).toEqual(["node.joined"]);
  });

  it("reports exactly one heartbeat.missed, with lastSeenAt, after silence for the timeout", async () => {
    const { events, detector, clock } = setup();
    await detector.onHeartbeat(hb("n1"));
    const lastSeenAt = clock.now();
    clock.advance(TIMEOUT - 1);
    await detector.tick();
    expect(types(events)).toEqual(["node.joined"]);
    expect(detector.isMissing("n1")).toBe(false);

    clock.advance(1);
    await detector.tick();
    for (let i = 0; i < 5; i++) {
      clock.advance(1_000);
      await detector.tick();
    }
    expect(types(events)).toEqual(["node.joined", "heartbeat.missed"]);
    const missed = events[1] as NodeEventOf<"heartbeat.missed">;
    expect(missed.data).toEqual({ lastSeenAt, bootId: "boot-1" });
    expect(missed.at).toBe(lastSeenAt + TIMEOUT);
    expect(detector.isMissing("n1")).toBe(true);
  });

  it("reports heartbeat.resumed when a missing node heartbeats again", async () => {
    const { events, detector, clock } = setup();
    await detector.onHeartbeat(hb("n1"));
    clock.advance(TIMEOUT);
    await detector.tick();
    clock.advance(500);
    const selfFenced = { at: 5, reason: "no peer answered", bootId: "boot-1" };
    await detector.onHeartbeat(hb("n1", { checksums: { app: "abc" }, selfFenced }));
    expect(types(events)).toEqual(["node.joined", "heartbeat.missed", "heartbeat.resumed"]);
    expect(events[2]!.data).toEqual({ bootId: "boot-1", incarnation: 1, checksums: { app: "abc" }, selfFenced });
    expect(detector.isMissing("n1")).toBe(false);

    // Healthy again: silence is reported again after the timeout.
    await detector.onHeartbeat(hb("n1"));
    clock.advance(TIMEOUT);
    await detector.tick();
    expect(types(events).filter((t) => t === "heartbeat.missed")).toHaveLength(2);
  });

  it("reports boot.changed, then heartbeat.resumed, when a missing node comes back with a new boot id", async () => {
    const { events, detector, clock } = setup();
    await detector.onHeartbeat(hb("n1", { bootId: "boot-1", incarnation: 1 }));
    clock.advance(TIMEOUT);
    await detector.tick();
    clock.advance(10_000);
    await detector.onHeartbeat(hb("n1", { bootId: "boot-2", incarnation: 2 }));
    expect(types(events)).toEqual(["node.joined", "heartbeat.missed", "boot.changed", "heartbeat.resumed"]);
    expect(events[2]!.data).toEqual({ previousBootId: "boot-1", bootId: "boot-2" });
    expect(events[3]!.data).toMatchObject({ bootId: "boot-2", incarnation: 2 });
  });

  it("reports boot.changed alone when a node rebooted faster than the timeout", async () => {
    const { events, detector, clock } = setup();
    await detector.onHeartbeat(hb("n1", { bootId: "boot-1" }));
    clock.advance(1_000);
    await detector.onHeartbeat(hb("n1", { bootId: "boot-2" }));
    expect(types(events)).toEqual(["node.joined", "boot.changed"]);
  });

  it("reports config.reported when the checksums of a healthy node change, and only then", async () => {
    const { events, detector } = setup();
    await detector.onHeartbeat(hb("n1", { checksums: { app: "a", db: "d" } }));
    // Same checksums, in another key order: no change.
    await detector.onHeartbeat(hb("n1", { checksums: { db: "d", app: "a" } }));
    await detector.onHeartbeat(hb("n1", { checksums: { app: "b", db: "d" } }));
    await detector.onHeartbeat(hb("n1", { checksums: { app: "b", db: "d" } }));
    expect(types(events)).toEqual(["node.joined", "config.reported"]);
    expect(events[1]!.data).toEqual({ bootId: "boot-1", checksums: { app: "b", db: "d" } });
  });

  it("gives deterministic ids: two detectors fed the same heartbeats produce the same ids", async () => {
    const run = async () => {
      const { events, detector, clock } = setup();
      let s = 0;
      const beat = (node: string, fields: Partial<Heartbeat> = {}) =>
        detector.onHeartbeat({ v: 1, node, bootId: "boot-1", incarnation: 1, seq: s++, sentAt: 0, ...fields });
      await beat("n1", { checksums: { app: "a" } });
      await beat("n2");
      clock.advance(1_000);
      await beat("n1", { checksums: { app: "b" } });
      clock.advance(TIMEOUT);
      await beat("n2");
      await detector.tick();
      clock.advance(2_000);
      await beat("n1", { bootId: "boot-2", incarnation: 2 });
      return events;
    };
    const a = await run();
    const b = await run();
    expect(types(a)).toEqual(["node.joined", "node.joined", "config.reported", "heartbeat.missed", "boot.changed", "heartbeat.resumed"]);
    expect(a.map((e) => e.id)).toEqual(b.map((e) => e.id));
    expect(new Set(a.map((e) => e.id)).size).toBe(a.length);
  });

  it("after a restart, seed() reports a silent known node once the timeout has passed", async () => {
    const { events, detector, clock } = setup();
    detector.seed([
      { node: "n1", bootId: "boot-1" },
      { node: "never-booted", bootId: null },
    ]);
    const seededAt = clock.now();
    expect(detector.known()).toEqual(["n1"]);
    clock.advance(TIMEOUT - 1);
    await detector.tick();
    expect(events).toEqual([]);
    clock.advance(1);
    await detector.tick();
    expect(types(events)).toEqual(["heartbeat.missed"]);
    expect(events[0]).toMatchObject({ node: "n1", data: { lastSeenAt: seededAt, bootId: "boot-1" } });
  });

  it("after a restart, a seeded node that heartbeats is reported as joined (boot.changed first when its boot id changed)", async () => {
    const { events, detector } = setup();
    detector.seed([
      { node: "n1", bootId: "boot-1" },
      { node: "n2", bootId: "boot-1" },
    ]);
    await detector.onHeartbeat(hb("n1", { bootId: "boot-1" }));
    await detector.onHeartbeat(hb("n2", { bootId: "boot-9" }));
    expect(events.map((e) => `${e.node}:${e.type}`)).toEqual(["n1:node.joined", "n2:boot.changed", "n2:node.joined"]);
  });

  it("seed() does not override a node already heard", async () => {
    const { events, detector, clock } = setup();
    await detector.onHeartbeat(hb("n1", { bootId: "boot-2" }));
    detector.seed([{ node: "n1", bootId: "boot-1" }]);
    await detector.onHeartbeat(hb("n1", { bootId: "boot-2" }));
    clock.advance(1);
    expect(types(events)).toEqual(["node.joined"]);
  });

  it("retries a failed heartbeat.missed publish on the next tick, with the same id", async () => {
    let failing = true;
    const { events, attempts, detector, clock } = setup({ failWhen: (e) => failing && e.type === "heartbeat.missed" });
    await detector.onHeartbeat(hb("n1"));
    clock.advance(TIMEOUT);
    await expect(detector.tick()).rejects.toThrow("publish failed");
    expect(detector.isMissing("n1")).toBe(false);
    failing = false;
    clock.advance(500);
    await detector.tick();
    expect(types(events)).toEqual(["node.joined", "heartbeat.missed"]);
    const tried = attempts.filter((e) => e.type === "heartbeat.missed");
    expect(tried).toHaveLength(2);
    expect(tried[0]!.id).toBe(tried[1]!.id);
    expect(detector.isMissing("n1")).toBe(true);
  });

  it("does not lose a heartbeat.resumed whose publish failed: the next heartbeat reports it", async () => {
    let failing = false;
    const { events, detector, clock } = setup({ failWhen: (e) => failing && e.type === "heartbeat.resumed" });
    await detector.onHeartbeat(hb("n1"));
    clock.advance(TIMEOUT);
    await detector.tick();
    failing = true;
    await expect(detector.onHeartbeat(hb("n1"))).rejects.toThrow("publish failed");
    failing = false;
    clock.advance(1_000);
    await detector.onHeartbeat(hb("n1"));
    expect(types(events)).toEqual(["node.joined", "heartbeat.missed", "heartbeat.resumed"]);
  });

  it("does not lose a node.joined whose publish failed", async () => {
    let failing = true;
    const { events, detector } = setup({ failWhen: (e) => failing && e.type === "node.joined" });
    await expect(detector.onHeartbeat(hb("n1"))).rejects.toThrow("publish failed");
    failing = false;
    await detector.onHeartbeat(hb("n1"));
    expect(types(events)).toEqual(["node.joined"]);
  });

  it("tracks nodes independently", async () => {
    const { events, detector, clock } = setup();
    await detector.onHeartbeat(hb("n1"));
    await detector.onHeartbeat(hb("n2"));
    for (let t = 0; t < 5; t++) {
      clock.advance(1_000);
      await detector.onHeartbeat(hb("n2"));
      await detector.tick();
    }
    expect(events.filter((e) => e.type === "heartbeat.missed").map((e) => e.node)).toEqual(["n1"]);
    expect(detector.isMissing("n2")).toBe(false);
  });
});

describe("heartbeat detector: the fencing contract", () => {
  const contract = (membershipVersion: number, kind: "hardware" | "software" = "hardware") => ({
    timing: { controlPlaneTimeoutMs: 5_000, peerRoundMs: 2_000, watchdogTimeoutMs: 10_000, marginMs: 5_000 },
    heartbeatIntervalMs: 1_000,
    watchdog: { kind, timeoutMs: 10_000 },
    membershipVersion,
  });

  it("carries the contract and peer URL in node.joined and heartbeat.resumed, and reports a change with contract.reported", async () => {
    const { events, detector, clock } = setup();
    await detector.onHeartbeat(hb("c1", { contract: contract(1), peerUrl: "http://10.0.0.1:9797" }));
    expect((events[0] as NodeEventOf<"node.joined">).data).toMatchObject({ contract: contract(1), peerUrl: "http://10.0.0.1:9797" });
    await detector.onHeartbeat(hb("c1", { contract: contract(1), peerUrl: "http://10.0.0.1:9797" }));
    expect(types(events)).toEqual(["node.joined"]);

    await detector.onHeartbeat(hb("c1", { contract: contract(2), peerUrl: "http://10.0.0.1:9797" }));
    expect(types(events)).toEqual(["node.joined", "contract.reported"]);
    expect((events[1] as NodeEventOf<"contract.reported">).data).toEqual({
      bootId: "boot-1",
      contract: contract(2),
      peerUrl: "http://10.0.0.1:9797",
    });
    await detector.onHeartbeat(hb("c1", { contract: contract(2), peerUrl: "http://10.0.0.2:9797" }));
    expect(types(events)).toEqual(["node.joined", "contract.reported", "contract.reported"]);

    clock.advance(TIMEOUT);
    await detector.tick();
    await detector.onHeartbeat(hb("c1", { contract: contract(3, "software"), peerUrl: "http://10.0.0.2:9797" }));
    expect(types(events)).toEqual(["node.joined", "contract.reported", "contract.reported", "heartbeat.missed", "heartbeat.resumed"]);
    expect((events[4] as NodeEventOf<"heartbeat.resumed">).data.contract).toEqual(contract(3, "software"));
  });

  it("reports a contract again after a publish failed", async () => {
    let fail = false;
    const { events, detector } = setup({ failWhen: (e) => fail && e.type === "contract.reported" });
    await detector.onHeartbeat(hb("c2", { contract: contract(1) }));
    fail = true;
    await expect(detector.onHeartbeat(hb("c2", { contract: contract(2) }))).rejects.toThrow("publish failed");
    fail = false;
    await detector.onHeartbeat(hb("c2", { contract: contract(2) }));
    expect(types(events)).toEqual(["node.joined", "contract.reported"]);
  });

  it("brings a forgotten node back with node.joined on its next heartbeat", async () => {
    const { events, detector } = setup();
    await detector.onHeartbeat(hb("c3", { contract: contract(1) }));
    detector.forget("c3");
    expect(detector.known()).toEqual([]);
    await detector.onHeartbeat(hb("c3", { contract: contract(1) }));
    expect(types(events)).toEqual(["node.joined", "node.joined"]);
  });
});
