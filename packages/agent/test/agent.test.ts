import { computeSafeTime, createMembershipView } from "@fenceline/contracts";
import { describe, expect, it } from "vitest";
import { createAgent } from "../src/agent.js";
import { createMemoryMembershipViewStore } from "../src/membership-store.js";
import { createMemoryAgentTransport } from "../src/memory-transport.js";
import { createMemorySelfFenceStore } from "../src/self-fence-store.js";
import { VirtualClock, VirtualWatchdog } from "@fenceline/testing";
import { createHarness, HEARTBEAT_MS, TIMING, watchdogStop } from "./helpers/agent-harness.js";
import { silentLog } from "./helpers/silent-log.js";

/** The agent must have stopped feeding this long after its last control-plane contact. */
const DECISION_BOUND = TIMING.controlPlaneTimeoutMs + TIMING.peerRoundMs;

describe("agent: heartbeats and feeding", () => {
  it("sends heartbeats with a growing seq; acks keep it feeding", async () => {
    const h = createHarness();
    await h.agent.start();
    await h.clock.advanceSettling(60_000);
    const seqs = h.transport.delivered.map((hb) => hb.seq);
    expect(seqs.length).toBeGreaterThanOrEqual(60);
    expect(seqs).toEqual(seqs.map((_, i) => i));
    expect(h.transport.delivered[0]).toMatchObject({ v: 1, node: "a", bootId: "boot-1", incarnation: 1, seq: 0, hostGroup: "workers" });
    expect(h.transport.delivered.some((hb) => hb.selfFenced)).toBe(false);
    expect(h.watchdog.firedAt).toBeUndefined();
    expect(h.watchdog.feeds).toBeGreaterThanOrEqual(20); // every timeout/3 = 3s
    expect(h.agent.state()).toMatchObject({ feeding: true, peerRounds: 0, lastAckState: "healthy" });
    expect(h.agent.state().controlPlaneLostForMs).toBeLessThan(HEARTBEAT_MS);
    await h.agent.stop();
  });

  it("reports checksums in heartbeats", async () => {
    const h = createHarness();
    const agent = createAgent({
      node: "z",
      bootId: "boot-1",
      incarnation: 2,
      timing: TIMING,
      heartbeatIntervalMs: HEARTBEAT_MS,
      transport: h.transport,
      peers: h.network.transportFor("z"),
      watchdog: new VirtualWatchdog({ clock: h.clock, timeoutMs: TIMING.watchdogTimeoutMs }),
      watchdogKind: "hardware",
      clock: h.clock,
      log: silentLog,
      checksums: async () => ({ kubelet: "abc" }),
    });
    await agent.start();
    expect(h.transport.delivered[0]?.checksums).toEqual({ kubelet: "abc" });
    await agent.stop();
  });

  it("a clean stop() disarms the watchdog with a magic close", async () => {
    const h = createHarness();
    await h.agent.start();
    await h.clock.advanceSettling(5_000);
    await h.agent.stop();
    expect(h.watchdog.state === "closed").toBe(true);
    expect(h.transport.closed).toBe(true);
    await h.clock.advanceSettling(60_000);
    expect(h.watchdog.firedAt).toBeUndefined();
  });

  it("refuses a watchdog slower than the timeout the safe time is computed from", () => {
    const h = createHarness();
    const slow = new VirtualWatchdog({ clock: h.clock, timeoutMs: TIMING.watchdogTimeoutMs + 1 });
    expect(() =>
      createAgent({
        node: "a",
        bootId: "b",
        incarnation: 1,
        timing: TIMING,
        heartbeatIntervalMs: HEARTBEAT_MS,
        transport: h.transport,
        peers: h.network.transportFor("a"),
        watchdog: slow,
        watchdogKind: "hardware",
        clock: h.clock,
        log: silentLog,
      }),
    ).toThrow(/safe time/);
  });
});

describe("agent: losing the control plane", () => {
  async function loseControlPlaneAfterWarmup(h: ReturnType<typeof createHarness>) {
    await h.agent.start();
    await h.clock.advanceSettling(10_000);
    h.setControlPlane(false);
    return h.agent.state().lastControlPlaneContact;
  }

  it("isolated: asks every peer, nobody answers, stops feeding within timeout + peer round", async () => {
    const h = createHarness();
    const lastContact = await loseControlPlaneAfterWarmup(h);
    await h.clock.advanceSettling(DECISION_BOUND);
    const state = h.agent.state();
    expect(state.peerRounds).toBe(1);
    expect(state.feeding).toBe(false);
    expect(state.selfFenced).toMatchObject({ bootId: "boot-1", reason: expect.stringMatching(/^isolated/) });
    expect(state.selfFenced!.at - lastContact).toBeLessThanOrEqual(DECISION_BOUND);
    // and the watchdog resets the node within the safe time the engine waits for
    await h.clock.advanceSettling(TIMING.watchdogTimeoutMs);
    expect(h.watchdog.firedAt).toBeDefined();
    expect(h.watchdog.firedAt! - lastContact).toBeLessThanOrEqual(computeSafeTime(TIMING).minSafeTimeMs);
  });

  it("fencing is one-way: the control plane coming back does not resume feeding", async () => {
    const h = createHarness();
    await loseControlPlaneAfterWarmup(h);
    await h.clock.advanceSettling(DECISION_BOUND);
    h.setControlPlane(true);
    await h.clock.advanceSettling(3_000);
    expect(h.agent.state().feeding).toBe(false);
    expect(h.transport.delivered.at(-1)?.selfFenced).toMatchObject({ bootId: "boot-1" });
  });

  it("peers lost it too and form a majority: control-plane outage, keeps feeding and keeps asking", async () => {
    const h = createHarness();
    h.scriptPeer("b", { controlPlane: "lost", verdict: "unknown" });
    h.scriptPeer("c", { controlPlane: "lost", verdict: "unknown" });
    await loseControlPlaneAfterWarmup(h);
    await h.clock.advanceSettling(60_000);
    const state = h.agent.state();
    expect(state.feeding).toBe(true);
    expect(state.lastDecision).toMatchObject({ action: "keep-feeding", reason: "control-plane-outage" });
    expect(state.peerRounds).toBeGreaterThan(20);
    expect(h.watchdog.firedAt).toBeUndefined();
  });

  it("a minority that lost it stops feeding", async () => {
    const h = createHarness();
    h.scriptPeer("b", { controlPlane: "lost" });
    h.scriptPeer("c", { controlPlane: "reachable", verdict: "unknown" });
    const lastContact = await loseControlPlaneAfterWarmup(h);
    await h.clock.advanceSettling(DECISION_BOUND);
    expect(h.agent.state().selfFenced?.reason).toMatch(/^partitioned-minority/);
    expect(h.agent.state().selfFenced!.at - lastContact).toBeLessThanOrEqual(DECISION_BOUND);
  });

  it("the majority shrinking while lost turns an outage into a fence", async () => {
    const h = createHarness();
    h.scriptPeer("b", { controlPlane: "lost" });
    h.scriptPeer("c", { controlPlane: "lost" });
    await loseControlPlaneAfterWarmup(h);
    await h.clock.advanceSettling(20_000);
    expect(h.agent.state().feeding).toBe(true);
    h.scriptPeer("c", undefined);
    // The round in flight, one that turns the verdict and is confirmed by the next.
    await h.clock.advanceSettling(2 * TIMING.peerRoundMs);
    expect(h.agent.state().selfFenced).toBeUndefined();
    await h.clock.advanceSettling(TIMING.peerRoundMs);
    expect(h.agent.state().selfFenced?.reason).toMatch(/^partitioned-minority/);
  });

  it("a connected peer that vouches keeps it feeding; one that accuses stops it", async () => {
    const h = createHarness();
    h.scriptPeer("b", { controlPlane: "reachable", verdict: "healthy" });
    await loseControlPlaneAfterWarmup(h);
    await h.clock.advanceSettling(20_000);
    expect(h.agent.state().lastDecision?.reason).toBe("peer-says-healthy");
    expect(h.agent.state().feeding).toBe(true);
    h.scriptPeer("c", { controlPlane: "reachable", verdict: "unhealthy" });
    await h.clock.advanceSettling(2 * TIMING.peerRoundMs);
    expect(h.agent.state().selfFenced?.reason).toMatch(/^marked-unhealthy/);
  });

  it("stops asking once the control plane answers again", async () => {
    const h = createHarness();
    h.scriptPeer("b", { controlPlane: "lost" });
    h.scriptPeer("c", { controlPlane: "lost" });
    await loseControlPlaneAfterWarmup(h);
    await h.clock.advanceSettling(10_000);
    h.setControlPlane(true);
    await h.clock.advanceSettling(3_000);
    const rounds = h.agent.state().peerRounds;
    await h.clock.advanceSettling(30_000);
    expect(h.agent.state().peerRounds).toBe(rounds);
    expect(h.agent.state().feeding).toBe(true);
  });
});

describe("agent: watchdog.stop commands", () => {
  it("refuses a stale epoch, accepts the current one and stops feeding", async () => {
    const h = createHarness();
    await h.agent.start();
    await h.clock.advanceSettling(2_000);
    const now = h.clock.now();
    expect(await h.transport.sendCommand(watchdogStop({ now, epoch: 5, id: "c5" }))).toEqual({ ok: true });
    expect(h.agent.state()).toMatchObject({ feeding: false, highestEpoch: 5 });
    expect(h.agent.state().selfFenced?.reason).toMatch(/engine request c5 \(epoch 5\)/);
    expect(await h.transport.sendCommand(watchdogStop({ now, epoch: 4, id: "c4" }))).toEqual({ ok: false, reason: "stale epoch 4 < 5" });
    expect(await h.transport.sendCommand(watchdogStop({ now, epoch: 5, id: "c5" }))).toEqual({ ok: true });
    await h.clock.advanceSettling(TIMING.watchdogTimeoutMs);
    expect(h.watchdog.firedAt).toBeDefined();
  });

  it("a refused command does not raise the epoch; a command for another node is refused", async () => {
    const h = createHarness();
    await h.agent.start();
    const now = h.clock.now();
    await h.transport.sendCommand(watchdogStop({ now, epoch: 7, deadline: now - 1 }));
    expect(h.agent.state().highestEpoch).toBeUndefined();
    expect((await h.transport.sendCommand(watchdogStop({ now, node: "other" }))).reason).toMatch(/for node other/);
    expect(h.agent.state().feeding).toBe(true);
  });

  it("a stop aimed at an earlier boot is refused without stopping this boot", async () => {
    const h = createHarness({ bootId: "boot-2" });
    await h.agent.start();
    const now = h.clock.now();
    const reply = await h.transport.sendCommand(watchdogStop({ now, params: { reason: "suspected", bootId: "boot-1" } }));
    expect(reply.ok).toBe(false);
    expect(reply.reason).toMatch(/boot boot-1.*rebooted since/);
    expect(h.agent.state().feeding).toBe(true);
    expect(await h.transport.sendCommand(watchdogStop({ now, params: { reason: "suspected", bootId: "boot-2" } }))).toEqual({ ok: true });
    expect(h.agent.state().feeding).toBe(false);
  });

  it("refuses a command past its deadline", async () => {
    const h = createHarness();
    await h.agent.start();
    await h.clock.advanceSettling(1_000);
    const reply = await h.transport.sendCommand(watchdogStop({ now: h.clock.now(), deadline: h.clock.now() - 1 }));
    expect(reply.ok).toBe(false);
    expect(reply.reason).toMatch(/deadline/);
    expect(h.agent.state().feeding).toBe(true);
  });

  it("stop() while fenced leaves the watchdog armed", async () => {
    const h = createHarness();
    await h.agent.start();
    await h.transport.sendCommand(watchdogStop({ now: h.clock.now() }));
    await h.agent.stop();
    expect(h.watchdog.state === "closed").toBe(false);
    await h.clock.advanceSettling(TIMING.watchdogTimeoutMs);
    expect(h.watchdog.firedAt).toBeDefined();
  });
});

describe("agent: self-fence record across boots", () => {
  it("persists the record; the next boot reports it until acked, then clears it", async () => {
    const store = createMemorySelfFenceStore();
    const first = createHarness({ selfFenceStore: store });
    await first.agent.start();
    first.setControlPlane(false);
    await first.clock.advanceSettling(DECISION_BOUND + 1_000);
    expect(store.record).toMatchObject({ bootId: "boot-1", reason: expect.stringMatching(/^isolated/) });

    const second = createHarness({ selfFenceStore: store, bootId: "boot-2" });
    second.setControlPlane(false);
    await second.agent.start();
    expect(second.agent.state()).toMatchObject({ feeding: true, previousSelfFence: { bootId: "boot-1" } });
    second.setControlPlane(true);
    await second.clock.advanceSettling(HEARTBEAT_MS);
    expect(second.transport.delivered[0]?.selfFenced).toMatchObject({ bootId: "boot-1" });
    await second.clock.advanceSettling(HEARTBEAT_MS);
    expect(store.record).toBeUndefined();
    expect(second.transport.delivered.at(-1)?.selfFenced).toBeUndefined();
    await second.agent.stop();
  });

  it("an agent restarted within the fenced boot stays fenced", async () => {
    const store = createMemorySelfFenceStore({ at: 1, reason: "isolated: test", bootId: "boot-1" });
    const h = createHarness({ selfFenceStore: store, bootId: "boot-1" });
    await h.agent.start();
    await h.clock.advanceSettling(TIMING.watchdogTimeoutMs);
    expect(h.agent.state().feeding).toBe(false);
    // It does not even open the device (opening feeds it): the previous agent's timer runs out.
    expect(h.watchdog.feeds).toBe(0);
    expect(h.watchdog.state === "armed").toBe(false);
  });
});

describe("agent: answering peers", () => {
  it("says reachable while its acks are fresh, lost after, and verdict unknown without a lookup", async () => {
    const h = createHarness();
    h.scriptPeer("b", { controlPlane: "lost" });
    await h.agent.start();
    await h.clock.advanceSettling(3_000);
    const asker = h.network.transportFor("b");
    expect(await asker.ask({ node: "a" }, { from: "b", about: "b" }, 1_000)).toEqual({
      node: "a",
      controlPlane: "reachable",
      verdict: "unknown",
    });
    h.setControlPlane(false);
    await h.clock.advanceSettling(2 * HEARTBEAT_MS + 1);
    expect(await asker.ask({ node: "a" }, { from: "b", about: "b" }, 1_000)).toEqual({
      node: "a",
      controlPlane: "lost",
      verdict: "unknown",
    });
  });

  it("looks the asking node's state up when the transport can", async () => {
    const h = createHarness({ nodeState: (node) => (node === "b" ? "fencing.awaitingConfirmation" : "healthy") });
    h.scriptPeer("b", { controlPlane: "lost" });
    await h.agent.start();
    const asker = h.network.transportFor("b");
    expect(await asker.ask({ node: "a" }, { from: "b", about: "b" }, 1_000)).toEqual({
      node: "a",
      controlPlane: "reachable",
      verdict: "unhealthy",
    });
    expect(await asker.ask({ node: "a" }, { from: "c", about: "c" }, 1_000)).toMatchObject({ verdict: "healthy" });
  });
});

describe("agent: membership learned from the control plane", () => {
  it("learns the view from its first ack, stores it before reporting its version, and decides with it", async () => {
    const h = createHarness();
    await h.agent.start();
    expect(h.transport.delivered[0]?.contract?.membershipVersion).toBe(0);
    await h.clock.advanceSettling(2 * HEARTBEAT_MS);
    expect(h.membership.view?.version).toBe(1);
    expect(h.agent.state().membership?.members.map((m) => m.node)).toEqual(["a", "b", "c", "d", "e"]);
    // Reported only once stored: every heartbeat claiming v1 was sent after the store had it.
    expect(h.transport.delivered.at(-1)?.contract?.membershipVersion).toBe(1);
    await h.agent.stop();
  });

  it("follows the fleet as it grows and shrinks; never goes back to an older view", async () => {
    const h = createHarness();
    await h.agent.start();
    await h.clock.advanceSettling(2 * HEARTBEAT_MS);
    const grown = createMembershipView(
      2,
      true,
      ["a", "b", "c", "d", "e", "f", "g"].map((node) => ({ node })),
    );
    h.serveView(grown);
    await h.clock.advanceSettling(2 * HEARTBEAT_MS);
    expect(h.agent.state().membership?.version).toBe(2);
    expect(h.transport.delivered.at(-1)?.contract?.membershipVersion).toBe(2);
    h.serveView(createMembershipView(1, true, [{ node: "a" }]));
    await h.clock.advanceSettling(2 * HEARTBEAT_MS);
    expect(h.agent.state().membership?.version).toBe(2);
    // Cut off in a grown fleet: 3 of 7 is no majority any more.
    h.scriptPeer("b", { controlPlane: "lost" });
    h.scriptPeer("c", { controlPlane: "lost" });
    h.setControlPlane(false);
    await h.clock.advanceSettling(DECISION_BOUND + 1);
    expect(h.agent.state().selfFenced?.reason).toBe(
      "partitioned-minority: only 3 of 7 votes (this node + 2 peer(s)) lost the control plane: not a strict majority of 7 member(s)",
    );
  });

  it("without a view it never fences itself for want of a majority, and reports version 0", async () => {
    const h = createHarness();
    h.serveView(null);
    await h.agent.start();
    h.setControlPlane(false);
    await h.clock.advanceSettling(30_000);
    expect(h.agent.state()).toMatchObject({ feeding: true, membership: null });
    expect(h.agent.state().lastDecision).toMatchObject({ action: "keep-feeding", reason: "no-membership" });
    expect(h.transport.delivered.every((hb) => hb.contract?.membershipVersion === 0)).toBe(true);
  });

  it("a restarted agent (or a new boot) decides with the view it stored, even cut off from the start", async () => {
    const clock = new VirtualClock(1_000_000);
    const first = createHarness({ clock });
    await first.agent.start();
    await clock.advanceSettling(2 * HEARTBEAT_MS);
    await first.agent.stop();
    const store = first.membership;
    expect(store.view?.version).toBe(1);
    const agent = createAgent({
      node: "a",
      bootId: "boot-2",
      incarnation: 2,
      timing: TIMING,
      heartbeatIntervalMs: HEARTBEAT_MS,
      membership: store,
      transport: createMemoryAgentTransport({ controlPlaneReachable: () => false }),
      peers: first.network.transportFor("a"),
      watchdog: new VirtualWatchdog({ clock, timeoutMs: TIMING.watchdogTimeoutMs }),
      watchdogKind: "softdog",
      clock,
      log: silentLog,
    });
    await agent.start();
    await clock.advanceSettling(DECISION_BOUND + 1);
    expect(agent.state().selfFenced?.reason).toMatch(/^isolated: no peer answered \(0 of 4 asked; 5 member/);
  });

  it("asks each member at the URL it advertised, or the address book's", async () => {
    const clock = new VirtualClock(1_000_000);
    const asked: Array<{ node: string; url?: string }> = [];
    const view = createMembershipView(3, true, [
      { node: "a" },
      { node: "b", peerUrl: "http://10.0.0.2:9797" },
      { node: "c", peerUrl: "http://10.0.0.3:9797" },
    ]);
    const agent = createAgent({
      node: "a",
      bootId: "boot-1",
      incarnation: 1,
      timing: TIMING,
      heartbeatIntervalMs: HEARTBEAT_MS,
      membership: createMemoryMembershipViewStore(view),
      addressBook: [
        { node: "c", url: "http://192.168.1.3:9797" },
        { node: "zz", url: "http://192.168.1.99:9797" },
      ],
      peerUrl: "http://10.0.0.1:9797",
      transport: createMemoryAgentTransport({ controlPlaneReachable: () => false }),
      peers: { ask: async (peer) => void asked.push(peer), serve: () => {}, close: async () => {} },
      watchdog: new VirtualWatchdog({ clock, timeoutMs: TIMING.watchdogTimeoutMs }),
      watchdogKind: "hardware",
      clock,
      log: silentLog,
    });
    await agent.start();
    await clock.advanceSettling(TIMING.controlPlaneTimeoutMs + 1);
    expect(asked).toEqual([
      { node: "b", url: "http://10.0.0.2:9797" },
      { node: "c", url: "http://192.168.1.3:9797" },
    ]);
  });
});

describe("agent: the fencing contract", () => {
  it("puts its timing, watchdog kind and timeout, membership version and peer URL in every heartbeat", async () => {
    const h = createHarness();
    await h.agent.start();
    await h.clock.advanceSettling(3 * HEARTBEAT_MS);
    const hb = h.transport.delivered.at(-1)!;
    expect(hb.contract).toEqual({
      timing: { controlPlaneTimeoutMs: 5_000, peerRoundMs: 2_000, watchdogTimeoutMs: 9_000, marginMs: 5_000 },
      heartbeatIntervalMs: HEARTBEAT_MS,
      watchdog: { kind: "hardware", timeoutMs: 9_000 },
      membershipVersion: 1,
    });
  });

  it("a clean stop withdraws the contract and disarms only once the control plane confirmed it", async () => {
    const h = createHarness();
    await h.agent.start();
    await h.clock.advanceSettling(2 * HEARTBEAT_MS);
    await h.agent.stop();
    const last = h.transport.delivered.at(-1)!;
    expect(last).toMatchObject({ stopping: true, contract: { withdrawn: true, watchdog: { kind: "none", timeoutMs: 0 } } });
    expect(h.watchdog.state === "closed").toBe(true);
  });

  it("without a confirmation (control plane unreachable) the watchdog stays armed and resets the node", async () => {
    const h = createHarness();
    await h.agent.start();
    await h.clock.advanceSettling(2 * HEARTBEAT_MS);
    h.setControlPlane(false);
    await h.agent.stop();
    expect(h.watchdog.state === "closed").toBe(false);
    await h.clock.advanceSettling(TIMING.watchdogTimeoutMs);
    expect(h.watchdog.firedAt).toBeDefined();
  });

  it("a kill sends nothing and disarms nothing", async () => {
    const h = createHarness();
    await h.agent.start();
    await h.clock.advanceSettling(2 * HEARTBEAT_MS);
    const sent = h.transport.delivered.length;
    await h.agent.stop({ clean: false });
    expect(h.transport.delivered.length).toBe(sent);
    expect(h.watchdog.state === "closed").toBe(false);
  });
});
