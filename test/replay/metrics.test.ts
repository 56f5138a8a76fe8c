import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNats, publishEvent, startNatsServer, type NatsServer } from "@fenceline/bus";
import { createEvent } from "@fenceline/contracts";
import { jetstream } from "@nats-io/jetstream";
import { createFencelineMetrics, Registry } from "@fenceline/engine";
import { HistoryGenerator } from "../../packages/cli/src/bench/history.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Parses the text format into { "name{labels}": value }. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

describe("metrics", () => {
  it("the registry writes the Prometheus text format: counters, gauges, histograms, escaped labels", () => {
    const r = new Registry();
    const c = r.counter("fenceline_test_total", "A counter.");
    c.inc({ kind: 'a"b\\c' }, 2);
    const g = r.gauge("fenceline_test_gauge", "A gauge.");
    g.set({}, 3);
    const h = r.histogram("fenceline_test_seconds", "A histogram.", [1, 5]);
    h.observe({ pool: "db" }, 0.5);
    h.observe({ pool: "db" }, 3);
    h.observe({ pool: "db" }, 9);
    expect(r.render()).toBe(
      [
        "# HELP fenceline_test_total A counter.",
        "# TYPE fenceline_test_total counter",
        'fenceline_test_total{kind="a\\"b\\\\c"} 2',
        "# HELP fenceline_test_gauge A gauge.",
        "# TYPE fenceline_test_gauge gauge",
        "fenceline_test_gauge 3",
        "# HELP fenceline_test_seconds A histogram.",
        "# TYPE fenceline_test_seconds histogram",
        'fenceline_test_seconds_bucket{pool="db",le="1"} 1',
        'fenceline_test_seconds_bucket{pool="db",le="5"} 2',
        'fenceline_test_seconds_bucket{pool="db",le="+Inf"} 3',
        'fenceline_test_seconds_sum{pool="db"} 12.5',
        'fenceline_test_seconds_count{pool="db"} 3',
        "",
      ].join("\n"),
    );
  });

  it("counts nodes per state, transitions, remediation durations per pool, command latency, failures and guard refusals", () => {
    const items = new HistoryGenerator({ nodes: 40, seed: 5, incidentEveryMs: 60_000 }).next(8_000);
    const m = createFencelineMetrics();
    for (const { event, audit } of items) {
      m.observeAudit(audit, ["db", "web", "batch"][Number(audit.node.split("-")[1]) % 3]);
      m.observeEvent(event);
    }
    const v = parseMetrics(m.render());
    const states = ["healthy", "suspect", "fencing", "remediating", "rejoining", "paused", "operator"].map((s) => v.get(`fenceline_nodes{state="${s}"}`) ?? NaN);
    expect(states.every(Number.isFinite)).toBe(true);
    expect(states.reduce((a, b) => a + b, 0)).toBe(40);
    expect(v.get('fenceline_transitions_total{from="healthy",to="suspect.waiting"}')).toBeGreaterThan(0);
    const pools = ["db", "web", "batch"].map((p) => v.get(`fenceline_remediation_duration_seconds_count{pool="${p}"}`) ?? 0);
    expect(pools.every((n) => n > 0)).toBe(true);
    expect(v.get('fenceline_command_duration_seconds_count{kind="slot.acquire"}')).toBeGreaterThan(0);
    expect(v.get('fenceline_command_results_total{kind="reprovision",result="failed"}')).toBeGreaterThan(0);
    expect(v.get('fenceline_command_failures_total{kind="watchdog.stop"}')).toBeGreaterThan(0);
    expect(v.get("fenceline_events_applied_total{type=\"command.result\"}")).toBeGreaterThan(0);
    expect(v.has("fenceline_fleet_guard_refusals_total")).toBe(true);
  });

  describe("fenceline up --metrics-port", () => {
    let server: NatsServer;
    let child: ReturnType<typeof spawn>;
    let port = 0;
    let stderr = "";
    beforeAll(async () => {
      server = await startNatsServer();
      port = await new Promise<number>((resolve) => {
        const s = createServer().listen(0, "127.0.0.1", () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => resolve(p));
        });
      });
      child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", join(ROOT, "packages/cli/src/bin.ts"), "up", "--server", server.url, "--metrics-port", String(port), "--metrics-host", "127.0.0.1"], {
        cwd: join(ROOT, "packages", "cli"),
        env: { ...process.env, FENCELINE_LOG_LEVEL: "warn" },
        stdio: ["ignore", "ignore", "pipe"],
      });
      child.stderr!.on("data", (d) => (stderr += d));
      const until = Date.now() + 30_000;
      while (!stderr.includes("up on")) {
        if (Date.now() > until || child.exitCode !== null) throw new Error(`fenceline up did not start:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }, 40_000);
    afterAll(async () => {
      child?.kill("SIGINT");
      await new Promise((r) => child?.once("close", r));
      await server?.stop();
    });

    it("serves the engine's metrics, updated as events are applied", async () => {
      const nc = await connectNats(server.url, { name: "metrics-test" });
      const js = jetstream(nc);
      await publishEvent(js, createEvent("node.joined", { id: "j1", node: "m-1", at: Date.now(), source: "test", data: { bootId: "b1", incarnation: 1, hostGroup: "db" } }));
      await publishEvent(js, createEvent("heartbeat.missed", { id: "m1", node: "m-1", at: Date.now(), source: "test", data: { lastSeenAt: Date.now() - 3_000, bootId: "b1" } }));
      await nc.close();
      let text = "";
      const until = Date.now() + 10_000;
      while (!text.includes('fenceline_nodes{state="suspect"} 1') || !text.includes("fenceline_dlq_messages ")) {
        if (Date.now() > until) break;
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        expect(res.headers.get("content-type")).toContain("text/plain");
        text = await res.text();
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(text).toContain('fenceline_nodes{state="suspect"} 1');
      expect(text).toContain('fenceline_transitions_total{from="healthy",to="suspect.waiting"} 1');
      expect(text).toMatch(/fenceline_consumer_lag_messages\{consumer="engine",stream="FL_EVENTS"\} \d+/);
      expect(text).toMatch(/fenceline_dlq_messages \d+/);
    });
  });
});
