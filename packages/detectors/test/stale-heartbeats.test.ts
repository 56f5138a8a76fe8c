import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { NodeEvent, type Heartbeat } from "@fenceline/contracts";
import { VirtualClock } from "@fenceline/testing";
import { createHeartbeatDetector } from "../src/heartbeat-detector.js";

/**
 * Replay protection: a heartbeat older than the newest one heard from its node (an earlier
 * incarnation, a seq of the current incarnation not above the last, or a boot that has ended)
 * is stale. It produces no event — above all no boot.changed (which confirms fencing by reboot)
 * and no heartbeat.resumed — does not count as a sign of life, and is reported to onStale.
 */
const TIMEOUT = 3_000;

function setup(options: { failWhen?: (event: NodeEvent) => boolean } = {}) {
  const clock = new VirtualClock(1_000_000);
  const events: NodeEvent[] = [];
  const stale: Array<{ hb: Heartbeat; reason: string }> = [];
  const detector = createHeartbeatDetector({
    clock,
    timeoutMs: TIMEOUT,
    publish: async (event) => {
      if (options.failWhen?.(event)) throw new Error("publish failed");
      events.push(NodeEvent.parse(event));
    },
    onStale: (hb, reason) => stale.push({ hb, reason }),
  });
  return { clock, events, stale, detector };
}

const hb = (bootId: string, incarnation: number, seq: number, fields: Partial<Heartbeat> = {}): Heartbeat => ({
  v: 1,
  node: "n1",
  bootId,
  incarnation,
  seq,
  sentAt: 0,
  ...fields,
});
const types = (events: NodeEvent[]) => events.map((e) => e.type);

describe("stale heartbeats (replay protection)", () => {
  it("a replayed heartbeat of an earlier boot is not a reboot: no boot.changed, no resumed", async () => {
    const { events, stale, detector, clock } = setup();
    await detector.onHeartbeat(hb("boot-1", 1, 0));
    await detector.onHeartbeat(hb("boot-1", 1, 1));
    // The node reboots (the agent starts again: incarnation 2).
    await detector.onHeartbeat(hb("boot-2", 2, 0));
    expect(types(events)).toEqual(["node.joined", "boot.changed"]);
    // It hangs; the detector reports it missing (fencing starts on the engine's side).
    clock.advance(TIMEOUT);
    await detector.tick();
    expect(types(events)).toEqual(["node.joined", "boot.changed", "heartbeat.missed"]);

    // Someone replays a heartbeat of boot-1: as is, and with its incarnation bumped.
    const replayed = hb("boot-1", 1, 1);
    expect(detector.staleReason(replayed)).toMatch(/^stale heartbeat: incarnation 1 is older than the node's current 2/);
    await detector.onHeartbeat(replayed);
    const forged = hb("boot-1", 7, 0);
    expect(detector.staleReason(forged)).toBe("stale heartbeat: boot boot-1 has ended (the node has booted boot-2 since)");
    await detector.onHeartbeat(forged);
    expect(types(events)).toEqual(["node.joined", "boot.changed", "heartbeat.missed"]);
    expect(stale.map((s) => s.hb)).toEqual([replayed, forged]);
    expect(detector.isMissing("n1")).toBe(true);
  });

  it("a replayed heartbeat of the current boot does not bring a missing node back", async () => {
    const { events, stale, detector, clock } = setup();
    for (let seq = 0; seq < 5; seq++) await detector.onHeartbeat(hb("boot-1", 3, seq));
    clock.advance(TIMEOUT);
    await detector.tick();
    await detector.onHeartbeat(hb("boot-1", 3, 4)); // the last one, again
    await detector.onHeartbeat(hb("boot-1", 3, 2)); // an earlier one
    await detector.onHeartbeat(hb("boot-1", 2, 99)); // the previous agent process of this boot
    expect(types(events)).toEqual(["node.joined", "heartbeat.missed"]);
    expect(stale.map((s) => s.reason)).toEqual([
      "stale heartbeat: seq 4 of incarnation 3 is not above the last one heard (4)",
      "stale heartbeat: seq 2 of incarnation 3 is not above the last one heard (4)",
      "stale heartbeat: incarnation 2 is older than the node's current 3 (boot boot-1)",
    ]);
    // The real agent's next heartbeat does.
    await detector.onHeartbeat(hb("boot-1", 3, 5));
    expect(types(events)).toEqual(["node.joined", "heartbeat.missed", "heartbeat.resumed"]);
  });

  it("replays do not keep a silent node alive", async () => {
    const { events, detector, clock } = setup();
    for (let seq = 0; seq < 3; seq++) await detector.onHeartbeat(hb("boot-1", 1, seq));
    for (let i = 0; i < 6; i++) {
      clock.advance(TIMEOUT / 3);
      await detector.onHeartbeat(hb("boot-1", 1, i % 3));
      await detector.tick();
    }
    expect(types(events)).toEqual(["node.joined", "heartbeat.missed"]);
  });

  it("an agent restart in the same boot (higher incarnation, seq from 0) is current", async () => {
    const { events, stale, detector } = setup();
    await detector.onHeartbeat(hb("boot-1", 1, 40));
    await detector.onHeartbeat(hb("boot-1", 2, 0));
    await detector.onHeartbeat(hb("boot-1", 2, 1));
    expect(stale).toEqual([]);
    expect(types(events)).toEqual(["node.joined"]);
  });

  it("a reboot whose publish failed is reported again by the next heartbeat (its boot is not taken as ended)", async () => {
    let failing = true;
    const { events, stale, detector } = setup({ failWhen: (e) => failing && e.type === "boot.changed" });
    await detector.onHeartbeat(hb("boot-1", 1, 0));
    await expect(detector.onHeartbeat(hb("boot-2", 2, 0))).rejects.toThrow("publish failed");
    failing = false;
    await detector.onHeartbeat(hb("boot-2", 2, 0));
    expect(stale).toEqual([]);
    expect(types(events)).toEqual(["node.joined", "boot.changed"]);
  });

  it("after a restart (seeded, incarnation unknown) the first heartbeat sets the baseline", async () => {
    const { events, stale, detector } = setup();
    detector.seed([{ node: "n1", bootId: "boot-5" }]);
    await detector.onHeartbeat(hb("boot-5", 9, 100));
    await detector.onHeartbeat(hb("boot-5", 9, 100));
    await detector.onHeartbeat(hb("boot-5", 8, 500));
    expect(types(events)).toEqual(["node.joined"]);
    expect(stale).toHaveLength(2);
  });

  it("property: replaying any earlier heartbeat at any time changes no event", async () => {
    type Step = { kind: "real"; hb: Heartbeat; advanceMs: number } | { kind: "replay"; pick: number };
    // A node's real life: boots, agent starts per boot, heartbeats per start, pauses between.
    const life = fc.array(
      fc.record({
        starts: fc.array(fc.record({ beats: fc.integer({ min: 1, max: 5 }), pauseMs: fc.constantFrom(500, 1_000, TIMEOUT, 2 * TIMEOUT) }), {
          minLength: 1,
          maxLength: 3,
        }),
      }),
      { minLength: 1, maxLength: 4 },
    );
    const replays = fc.array(fc.record({ at: fc.nat(), pick: fc.nat() }), { maxLength: 12 });
    await fc.assert(
      fc.asyncProperty(life, replays, async (boots, inserted) => {
        const real: Step[] = [];
        let incarnation = 0;
        boots.forEach((boot, b) => {
          for (const start of boot.starts) {
            incarnation++;
            for (let seq = 0; seq < start.beats; seq++) {
              real.push({
                kind: "real",
                hb: hb(`boot-${b}`, incarnation, seq),
                advanceMs: seq === start.beats - 1 ? start.pauseMs : 1_000,
              });
            }
          }
        });
        const withReplays: Step[] = [...real];
        for (const r of inserted.sort((a, b) => b.at - a.at))
          withReplays.splice(1 + (r.at % real.length), 0, { kind: "replay", pick: r.pick });

        const run = async (steps: Step[]) => {
          const { events, detector, clock } = setup();
          const sent: Heartbeat[] = [];
          for (const step of steps) {
            if (step.kind === "real") {
              sent.push(step.hb);
              await detector.onHeartbeat(step.hb);
              clock.advance(step.advanceMs);
              await detector.tick();
            } else {
              // A replay carries a heartbeat that was sent before, byte for byte.
              const original = sent[step.pick % sent.length]!;
              await detector.onHeartbeat(original);
            }
          }
          return events.map((e) => `${e.type}:${e.id}`);
        };
        expect(await run(withReplays)).toEqual(await run(real));
      }),
      { seed: 20261122, numRuns: 200 },
    );
  });
});
