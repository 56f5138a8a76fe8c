import { NODE_STATES } from "@fenceline/statecharts";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNats, publishEvent, startNatsServer, type NatsServer } from "@fenceline/bus";
import { createEvent, type AuditRecord } from "@fenceline/contracts";
import { jetstream } from "@nats-io/jetstream";
import { createFencelineMetrics } from "@fenceline/engine";
import { parseExposition } from "../support/metrics-text.js";
import { HistoryGenerator } from "@fenceline/testing";
import { ROOT, startUp, type RunningUp } from "../e2e/cli.js";
import { freePort } from "../support/free-port.js";

/** An audit record of `node` at sequence `seq`: from → to at `at` (ms). */
const record = (node: string, seq: number, at: number, from: string, to: string, type = "x"): AuditRecord => ({
  v: 1,
  id: `a${seq}`,
  node,
  seq,
  at,
  event: { id: `e${seq}`, type, source: "t" },
  from,
  to,
  changed: from !== to,
  epoch: 1,
  commands: [],
  timers: { set: {}, cleared: [] },
  policyVersion: "p",
});

describe("metrics", () => {
  it("every metric is named by Prometheus conventions and has its HELP text", async () => {
    const m = createFencelineMetrics({
      natsConnected: () => true,
      fleet: async () => ({ fleetSize: 5, healthy: 4, slotsUsed: 1, slotsAllowed: 2 }),
    });
    const { families } = parseExposition(await m.render());
    expect(families.size).toBeGreaterThan(15);
    for (const [name, f] of families) {
      expect(name).toMatch(/^fenceline_[a-z_]+$/);
      expect(f.help.length, name).toBeGreaterThan(20);
      if (f.type === "counter") expect(name).toMatch(/_total$/);
      else expect(name).not.toMatch(/_total$/);
      if (f.type === "histogram") expect(name).toMatch(/_seconds$/);
    }
  });

  it("reports the fleet guard's view and the NATS connection where the control plane gives them", async () => {
    let connected = true;
    let status = { fleetSize: 5, healthy: 3, slotsUsed: 2, slotsAllowed: 2 };
    let fail = false;
    const m = createFencelineMetrics({
      natsConnected: () => connected,
      fleet: async () => (fail ? Promise.reject(new Error("no KV")) : status),
    });
    let v = parseExposition(await m.render()).samples;
    expect(v.get("fenceline_nats_connected")).toBe(1);
    expect(v.get("fenceline_fleet_nodes")).toBe(5);
    expect(v.get("fenceline_fleet_healthy_nodes")).toBe(3);
    expect(v.get("fenceline_fleet_healthy_majority")).toBe(1);
    expect(v.get("fenceline_remediation_slots_used")).toBe(2);
    expect(v.get("fenceline_remediation_slots_allowed")).toBe(2);
    connected = false;
    status = { fleetSize: 6, healthy: 3, slotsUsed: 0, slotsAllowed: 1 };
    v = parseExposition(await m.render()).samples;
    expect(v.get("fenceline_nats_connected")).toBe(0);
    expect(v.get("fenceline_fleet_healthy_majority")).toBe(0); // 3 of 6 is no majority
    fail = true;
    v = parseExposition(await m.render()).samples;
    expect(v.get("fenceline_fleet_healthy_majority")).toBeNaN();
    expect(v.get("fenceline_remediation_slots_used")).toBeNaN();
    // A process without a control plane (the UI server) does not pretend to know them.
    const ui = parseExposition(await createFencelineMetrics().render()).families;
    expect(ui.has("fenceline_fleet_healthy_majority")).toBe(false);
    expect(ui.has("fenceline_nats_connected")).toBe(false);
    expect(ui.has("fenceline_engine_partitions_owned")).toBe(false);
  });

  it("reports the partitions an engine instance owns and how many there are", async () => {
    let owned = 5;
    const m = createFencelineMetrics({ partitions: () => ({ owned, total: 16 }) });
    let v = parseExposition(await m.render()).samples;
    expect(v.get("fenceline_engine_partitions_owned")).toBe(5);
    expect(v.get("fenceline_engine_partitions")).toBe(16);
    owned = 0;
    v = parseExposition(await m.render()).samples;
    expect(v.get("fenceline_engine_partitions_owned")).toBe(0);
  });

  it("counts nodes per state, transitions, lifecycle durations per pool, command latency, failures and guard refusals", async () => {
    const items = new HistoryGenerator({ nodes: 40, seed: 5, incidentEveryMs: 60_000 }).next(8_000);
    const m = createFencelineMetrics();
    for (const { event, audit } of items) {
      m.observeAudit(audit, ["db", "web", "batch"][Number(audit.node.split("-")[1]) % 3]);
      m.observeEvent(event);
    }
    const v = parseExposition(await m.render()).samples;
    const states = [...NODE_STATES].map((s) => v.get(`fenceline_nodes{state="${s}"}`) ?? NaN);
    expect(states.every(Number.isFinite)).toBe(true);
    expect(states.reduce((a, b) => a + b, 0)).toBe(40);
    expect(v.get('fenceline_transitions_total{from="healthy",to="suspect.waiting"}')).toBeGreaterThan(0);
    const pools = ["db", "web", "batch"].map((p) => v.get(`fenceline_remediation_duration_seconds_count{pool="${p}"}`) ?? 0);
    expect(pools.every((n) => n > 0)).toBe(true);
    expect(v.get('fenceline_command_duration_seconds_count{kind="slot.acquire"}')).toBeGreaterThan(0);
    expect(v.get('fenceline_command_results_total{kind="reprovision",result="failed"}')).toBeGreaterThan(0);
    expect(v.get('fenceline_command_failures_total{kind="watchdog.stop"}')).toBeGreaterThan(0);
    expect(v.get('fenceline_events_applied_total{type="command.result"}')).toBeGreaterThan(0);
    expect(v.has("fenceline_fleet_guard_refusals_total")).toBe(true);
    for (const h of ["time_to_fence", "time_to_remediate", "time_to_rejoin"]) {
      const counts = ["db", "web", "batch"].map((p) => v.get(`fenceline_${h}_seconds_count{pool="${p}"}`) ?? 0);
      expect(
        counts.every((n) => n > 0),
        h,
      ).toBe(true);
      const sum = ["db", "web", "batch"].reduce((a, p) => a + v.get(`fenceline_${h}_seconds_sum{pool="${p}"}`)!, 0);
      expect(sum, h).toBeGreaterThan(0);
    }
    // One "since" series per node, in its current state.
    const since = [...v.keys()].filter((k) => k.startsWith("fenceline_node_state_since_timestamp_seconds{"));
    expect(since).toHaveLength(40);
    expect(since.filter((k) => k.includes('state="healthy"')).length).toBe(v.get('fenceline_nodes{state="healthy"}'));
  });

  it("times fencing, remediation and rejoining from the transitions, and keeps one state-since series per node", async () => {
    const m = createFencelineMetrics();
    let seq = 0;
    const step = (from: string, to: string, at: number) => m.observeAudit(record("n-1", ++seq, at, from, to), "db");
    step("new", "healthy", 1_000);
    step("healthy", "suspect.waiting", 10_000);
    step("suspect.waiting", "fencing", 12_000);
    step("fencing", "remediating.selecting", 17_000);
    step("remediating.selecting", "remediating.running", 17_500);
    step("remediating.running", "rejoining.deciding", 20_000);
    step("rejoining.deciding", "healthy", 23_000);
    const v = parseExposition(await m.render()).samples;
    expect(v.get('fenceline_time_to_fence_seconds_sum{pool="db"}')).toBe(7);
    expect(v.get('fenceline_time_to_remediate_seconds_sum{pool="db"}')).toBe(10);
    expect(v.get('fenceline_time_to_rejoin_seconds_sum{pool="db"}')).toBe(3);
    expect(v.get('fenceline_remediation_duration_seconds_sum{pool="db"}')).toBe(13);
    expect(v.get('fenceline_node_state_since_timestamp_seconds{node="n-1",state="healthy"}')).toBe(23);
    expect([...v.keys()].filter((k) => k.includes('node="n-1"'))).toHaveLength(1);
    // A substate change keeps the time the top-level state was entered.
    step("healthy", "suspect.waiting", 30_000);
    step("suspect.waiting", "suspect.requestingSlot", 31_000);
    const w = parseExposition(await m.render()).samples;
    expect(w.get('fenceline_node_state_since_timestamp_seconds{node="n-1",state="suspect"}')).toBe(30);
    expect(w.has('fenceline_node_state_since_timestamp_seconds{node="n-1",state="healthy"}')).toBe(false);
  });

  it("an engine instance takes node states from the snapshots (all partitions), not from the events it applied", async () => {
    const m = createFencelineMetrics({ states: "snapshots" });
    // An audit record of a partition this instance applied changes counters, not node states.
    m.observeAudit(record("n-1", 1, 5_000, "healthy", "suspect.waiting", "heartbeat.missed"));
    let v = parseExposition(await m.render()).samples;
    expect(v.get('fenceline_transitions_total{from="healthy",to="suspect.waiting"}')).toBe(1);
    expect(v.get('fenceline_nodes{state="suspect"}')).toBe(0);
    m.observeSnapshot({ node: "n-1", path: "fencing", since: 7_000, hostGroup: "db" });
    m.observeSnapshot({ node: "n-2", path: "healthy", since: 1_000 });
    m.observeSnapshot({ node: "n-1", path: "fencing", since: 7_000 });
    v = parseExposition(await m.render()).samples;
    expect(v.get('fenceline_nodes{state="fencing"}')).toBe(1);
    expect(v.get('fenceline_nodes{state="healthy"}')).toBe(1);
    expect(v.get('fenceline_node_state_since_timestamp_seconds{node="n-1",state="fencing"}')).toBe(7);
    // The node moves on (another instance applied it), then leaves the fleet.
    m.observeSnapshot({ node: "n-1", path: "remediating.running", since: 9_000 });
    m.forgetNode("n-2");
    v = parseExposition(await m.render()).samples;
    expect(v.get('fenceline_nodes{state="fencing"}')).toBe(0);
    expect(v.get('fenceline_nodes{state="remediating"}')).toBe(1);
    expect(v.get('fenceline_nodes{state="healthy"}')).toBe(0);
    expect([...v.keys()].filter((k) => k.startsWith("fenceline_node_state_since_timestamp_seconds"))).toEqual([
      'fenceline_node_state_since_timestamp_seconds{node="n-1",state="remediating"}',
    ]);
  });

  it("counts nodes per fencing guarantee and names each agent whose contract is weaker than the policy", async () => {
    const m = createFencelineMetrics({ states: "snapshots" });
    m.observeSnapshot({ node: "n-1", path: "healthy", since: 1_000, guarantee: { guarantee: "watchdog", weak: false } });
    m.observeSnapshot({ node: "n-2", path: "healthy", since: 1_000, guarantee: { guarantee: "none", weak: true } });
    m.observeSnapshot({ node: "n-3", path: "healthy", since: 1_000 });
    m.observeSnapshot({ node: "n-4", path: "down", since: 1_000, guarantee: { guarantee: "power", weak: false } });
    let v = parseExposition(await m.render()).samples;
    expect(["watchdog", "power", "none"].map((g) => v.get(`fenceline_nodes_by_guarantee{guarantee="${g}"}`))).toEqual([1, 1, 2]);
    expect(v.get('fenceline_agent_contract_weak{node="n-2"}')).toBe(1);
    expect(v.get('fenceline_agent_contract_weak{node="n-1"}')).toBe(0);
    // Its agent fixed, then another node forgotten: out of the fleet, no series left.
    m.observeSnapshot({ node: "n-2", path: "healthy", since: 1_000, guarantee: { guarantee: "watchdog", weak: false } });
    m.observeSnapshot({ node: "n-4", path: "forgotten", since: 2_000 });
    m.forgetNode("n-3");
    v = parseExposition(await m.render()).samples;
    expect(["watchdog", "power", "none"].map((g) => v.get(`fenceline_nodes_by_guarantee{guarantee="${g}"}`))).toEqual([2, 0, 0]);
    expect([...v.keys()].filter((k) => k.startsWith("fenceline_agent_contract_weak")).sort()).toEqual([
      'fenceline_agent_contract_weak{node="n-1"}',
      'fenceline_agent_contract_weak{node="n-2"}',
    ]);
    expect(v.get('fenceline_agent_contract_weak{node="n-2"}')).toBe(0);
  });

  describe("fenceline up --metrics-port", () => {
    let server: NatsServer;
    let up: RunningUp | undefined;
    let port = 0;
    beforeAll(async () => {
      server = await startNatsServer();
      port = await freePort();
      const sources = ["--conditions=source", "--import", "tsx", join(ROOT, "packages/cli/src/bin.ts")];
      up = await startUp(["--server", server.url, "--metrics-port", String(port), "--metrics-host", "127.0.0.1"], { entry: sources });
    }, 40_000);
    afterAll(async () => {
      await up?.stop();
      await server?.stop();
    });

    it("serves the engine's metrics, updated as events are applied", async () => {
      const nc = await connectNats(server.url, { name: "metrics-test" });
      const js = jetstream(nc);
      await publishEvent(
        js,
        createEvent("node.joined", {
          id: "j1",
          node: "m-1",
          at: Date.now(),
          source: "test",
          data: { bootId: "b1", incarnation: 1, hostGroup: "db" },
        }),
      );
      await publishEvent(
        js,
        createEvent("heartbeat.missed", {
          id: "m1",
          node: "m-1",
          at: Date.now(),
          source: "test",
          data: { lastSeenAt: Date.now() - 3_000, bootId: "b1" },
        }),
      );
      await nc.close();
      let text = "";
      const until = Date.now() + 10_000;
      // The fleet gauge comes from the fleet view, which follows FL_NODES through a KV watch: it
      // sees the saved snapshot a moment after the engine's own metrics do.
      const ready = ['fenceline_nodes{state="suspect"} 1', "fenceline_dlq_messages ", "fenceline_fleet_nodes 1"];
      while (!ready.every((line) => text.includes(line))) {
        if (Date.now() > until) break;
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        expect(res.headers.get("content-type")).toContain("text/plain");
        text = await res.text();
        await new Promise((r) => setTimeout(r, 200));
      }
      const v = parseExposition(text).samples;
      expect(v.get('fenceline_nodes{state="suspect"}')).toBe(1);
      expect(v.get('fenceline_transitions_total{from="healthy",to="suspect.waiting"}')).toBe(1);
      expect(v.get('fenceline_consumer_lag_messages{consumer="engine",stream="FL_EVENTS"}')).toBeGreaterThanOrEqual(0);
      expect(v.get("fenceline_dlq_messages")).toBeGreaterThanOrEqual(0);
      expect(v.get("fenceline_nats_connected")).toBe(1);
      expect(v.get("fenceline_fleet_nodes")).toBe(1);
      expect(v.get("fenceline_remediation_slots_used")).toBe(0);
      expect(v.get("fenceline_remediation_slots_allowed")).toBeGreaterThanOrEqual(0);
      // The only engine instance owns every partition.
      expect(v.get("fenceline_engine_partitions")).toBe(16);
      expect(v.get("fenceline_engine_partitions_owned")).toBe(16);
      expect(v.get('fenceline_node_state_since_timestamp_seconds{node="m-1",state="suspect"}')).toBeGreaterThan(0);
      expect(v.get("process_resident_memory_bytes")).toBeGreaterThan(0);
    });
  });
});
