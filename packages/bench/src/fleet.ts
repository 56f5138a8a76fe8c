import { spawn, type ChildProcess } from "node:child_process";
import type { Subscription } from "@nats-io/transport-node";
import { AuditRecord, DEFAULT_POLICY, type Heartbeat } from "@fenceline/contracts";
import { createLogger } from "@fenceline/bus";
import { percentile } from "@fenceline/sim";
import { Subjects } from "@fenceline/streams";
import { humanOutput, intOption, parseBench, printJson, table } from "@fenceline/command-line";
import { withBenchNats } from "./bench-nats.js";
import type { BenchContext } from "./command.js";
import { processCpuMs, processRssMb, ratio } from "./measure.js";

const USAGE = `usage: fenceline bench fleet [--nodes N] [--kill N] [--connections N] [--steady SECONDS] [--json]

A fleet of N simulated agents heartbeating at 1 Hz over real NATS against the control plane
(\`fenceline up\`, in a child process of its own, default policy: heartbeat timeout
${DEFAULT_POLICY.heartbeat.timeoutMs / 1000} s), on a nats-server started here. The agents are light: a few connections,
each sending its share of the heartbeats spread over the second (with a reply subject, so the
detector answers each one as it answers a real agent). Once every node has joined and the fleet
has run steadily for --steady seconds, --kill agents go silent at once; the detection latency of
each is the time from its last heartbeat to the moment its heartbeat.missed audit record (the
engine's transition to suspect) is seen. CPU and memory are the control-plane process's (engine,
heartbeat detector, fleet guard, actuators), read from /proc.
Prints a table; with --json the table goes to stderr and stdout is one JSON document,
{ "nodes": n, "killed": n, "detected": n, "detectionP50Ms": n, "detectionP99Ms": n, "detectionMaxMs": n,
  "timeoutMs": n, "cpuPercentSteady": n, "cpuPercentDetection": n, "rssMb": n, "peakRssMb": n, "joinMs": n }.
  --nodes N        agents (default 10000)
  --kill N         agents that stop (default 100)
  --connections N  NATS connections the agents share (default 4)
  --steady S       seconds of steady heartbeating measured before the kill (default 10)`;

const int = (value: unknown, name: string, fallback: number, min: number) => intOption(value, name, fallback, min, USAGE);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export type FleetResult = {
  nodes: number;
  killed: number;
  detected: number;
  detectionP50Ms: number | null;
  detectionP99Ms: number | null;
  detectionMaxMs: number | null;
  /** From the last heartbeat to the detector's decision (the event's time). */
  detectorP50Ms: number | null;
  detectorP99Ms: number | null;
  /** From the detector's decision to the audit record seen (publish, engine, audit). */
  engineP50Ms: number | null;
  engineP99Ms: number | null;
  timeoutMs: number;
  cpuPercentSteady: number | null;
  cpuPercentDetection: number | null;
  rssMb: number | null;
  peakRssMb: number | null;
  joinMs: number;
  heartbeatsPerSec: number;
};

/** `fenceline up` as a child process: `fencelineBin` is the built CLI (the bench does not depend on it; the CLI says where it is). */
async function startControlPlane(fencelineBin: string, url: string): Promise<{ child: ChildProcess; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [fencelineBin, "up", "--server", url, "--metrics-port", "0"], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env },
  });
  let stderr = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fenceline up did not start within 30 s:\n${stderr.slice(-2_000)}`)), 30_000);
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      stderr = (stderr + chunk).slice(-20_000);
      if (stderr.includes("fenceline: up on")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`fenceline up exited with ${code}:\n${stderr.slice(-2_000)}`));
    });
  });
  return {
    child,
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export async function runFleetBench(options: {
  nodes: number;
  kill: number;
  connections: number;
  steadySec: number;
  /** The `fenceline` bin whose `up` is measured. */
  fencelineBin: string;
  progress?: (line: string) => void;
}): Promise<FleetResult> {
  const say = options.progress ?? (() => {});
  const log = createLogger("bench", { level: "warn" });
  const timeoutMs = DEFAULT_POLICY.heartbeat.timeoutMs;
  return withBenchNats(log, async ({ server, connect }) => {
    let control: Awaited<ReturnType<typeof startControlPlane>> | undefined;
    const subs: Subscription[] = [];
    let ticking = true;
    let heartbeats: Promise<void> = Promise.resolve();
    try {
      control = await startControlPlane(options.fencelineBin, server.url);
      const pid = control.child.pid!;
      say(`control plane (fenceline up, pid ${pid}) on ${server.url}`);
      const observer = await connect("bench-fleet-observer");

      // What the engine did: joins, and heartbeat.missed transitions, as they are audited.
      const names = Array.from({ length: options.nodes }, (_, i) => `node-${i + 1}`);
      const joined = new Set<string>();
      const missedAt = new Map<string, number>();
      /** When the detector decided (the event's time), to tell its share from the engine's. */
      const decidedAt = new Map<string, number>();
      subs.push(
        observer.subscribe(Subjects.auditAll, {
          callback: (err, msg) => {
            if (err) return;
            const parsed = AuditRecord.safeParse(msg.json());
            if (!parsed.success) return;
            const r = parsed.data;
            if (r.event.type === "node.joined") joined.add(r.node);
            if (r.event.type === "heartbeat.missed" && !missedAt.has(r.node)) {
              missedAt.set(r.node, Date.now());
              decidedAt.set(r.node, r.at);
            }
          },
        }),
      );
      await observer.flush();

      // The agents: each connection sends its nodes' heartbeats, spread over the second.
      const agents = await Promise.all(
        Array.from({ length: options.connections }, async (_, k) => {
          const nc = await connect(`bench-fleet-agents-${k}`);
          const inbox = `_INBOX.fleetbench.${k}`;
          subs.push(nc.subscribe(`${inbox}.>`, { callback: () => {} }));
          return { nc, inbox };
        }),
      );
      const lastSent = new Map<string, number>();
      const silent = new Set<string>();
      const seqs = new Map<string, number>();
      let sent = 0;
      const SLOTS = 20;
      heartbeats = (async () => {
        let slot = 0;
        let next = Date.now();
        while (ticking) {
          const now = Date.now();
          for (let i = slot; i < names.length; i += SLOTS) {
            const node = names[i]!;
            if (silent.has(node)) continue;
            const seq = (seqs.get(node) ?? 0) + 1;
            seqs.set(node, seq);
            const hb: Heartbeat = { v: 1, node, bootId: `${node}-boot-1`, incarnation: 1, seq, sentAt: now };
            const agent = agents[i % agents.length]!;
            agent.nc.publish(Subjects.heartbeat(node), JSON.stringify(hb), { reply: `${agent.inbox}.${i}` });
            lastSent.set(node, now);
            sent += 1;
          }
          slot = (slot + 1) % SLOTS;
          next += 1_000 / SLOTS;
          await sleep(Math.max(0, next - Date.now()));
        }
      })();

      const joinStarted = Date.now();
      while (joined.size < names.length) {
        if (Date.now() - joinStarted > 120_000) throw new Error(`only ${joined.size} of ${names.length} nodes joined within 120 s`);
        await sleep(100);
      }
      const joinMs = Date.now() - joinStarted;
      say(`${names.length} nodes joined in ${joinMs} ms`);

      // Steady state.
      await sleep(1_000);
      const cpu0 = processCpuMs(pid);
      const sent0 = sent;
      const t0 = Date.now();
      await sleep(options.steadySec * 1_000);
      const cpu1 = processCpuMs(pid);
      const steadyMs = Date.now() - t0;
      const heartbeatsPerSec = Math.round(((sent - sent0) * 1000) / steadyMs);
      const rssSteady = processRssMb(pid);
      say(`steady: ${heartbeatsPerSec} heartbeats/s for ${Math.round(steadyMs / 1000)} s`);

      // The kill: spread over the fleet and over the second (each heartbeat slot), all at once.
      const step = Math.max(1, Math.floor(names.length / options.kill));
      const victims = [...new Set(Array.from({ length: options.kill }, (_, i) => names[(i * step + (i % SLOTS)) % names.length]!))];
      const killedAt = Date.now();
      for (const v of victims) silent.add(v);
      const cpu2 = processCpuMs(pid);
      const deadline = killedAt + timeoutMs + 20_000;
      while (victims.some((v) => !missedAt.has(v)) && Date.now() < deadline) await sleep(50);
      const cpu3 = processCpuMs(pid);
      const detectMs = Date.now() - killedAt;
      const latencies = victims
        .filter((v) => missedAt.has(v))
        .map((v) => missedAt.get(v)! - lastSent.get(v)!)
        .sort((a, b) => a - b);
      const pct = (p: number) => percentile(latencies, p);
      const decided = victims
        .filter((v) => decidedAt.has(v))
        .map((v) => decidedAt.get(v)! - lastSent.get(v)!)
        .sort((a, b) => a - b);
      const engineLag = victims
        .filter((v) => decidedAt.has(v))
        .map((v) => missedAt.get(v)! - decidedAt.get(v)!)
        .sort((a, b) => a - b);
      const rssEnd = processRssMb(pid);
      say(`${latencies.length} of ${victims.length} silent agents detected`);
      const cpuPercent = (a: number | null, b: number | null, ms: number) =>
        a === null || b === null ? null : Math.round(((b - a) / ms) * 1000) / 10;
      return {
        nodes: names.length,
        killed: victims.length,
        detected: latencies.length,
        detectionP50Ms: pct(50),
        detectionP99Ms: pct(99),
        detectionMaxMs: latencies.at(-1) ?? null,
        detectorP50Ms: percentile(decided, 50),
        detectorP99Ms: percentile(decided, 99),
        engineP50Ms: percentile(engineLag, 50),
        engineP99Ms: percentile(engineLag, 99),
        timeoutMs,
        cpuPercentSteady: cpuPercent(cpu0, cpu1, steadyMs),
        cpuPercentDetection: cpuPercent(cpu2, cpu3, detectMs),
        rssMb: rssEnd ? Math.round(Math.max(rssEnd.rss, rssSteady?.rss ?? 0)) : null,
        peakRssMb: rssEnd ? Math.round(rssEnd.peak) : null,
        joinMs,
        heartbeatsPerSec,
      };
    } finally {
      ticking = false;
      await heartbeats;
      for (const s of subs) s.unsubscribe();
      await control?.stop();
    }
  });
}

/** `ratio(a, b)`, null when `a` is unknown. */
const ratioOrNull = (a: number | null, b: number) => (a === null ? null : ratio(a, b));

/** `fenceline bench fleet`: exit code 1 when an agent that went silent was never detected. */
export async function benchFleet(argv: string[], context: BenchContext): Promise<number> {
  const values = parseBench(
    argv,
    "fleet",
    {
      nodes: { type: "string" },
      kill: { type: "string" },
      connections: { type: "string" },
      steady: { type: "string" },
      json: { type: "boolean" },
    },
    USAGE,
  );
  if (!values) return 0;
  const nodes = int(values.nodes, "nodes", 10_000, 1);
  const r = await runFleetBench({
    nodes,
    kill: Math.min(nodes, int(values.kill, "kill", 100, 1)),
    connections: int(values.connections, "connections", 4, 1),
    steadySec: int(values.steady, "steady", 10, 1),
    fencelineBin: context.fencelineBin,
    progress: (line) => process.stderr.write(`${line}\n`),
  });
  const ms = (v: number | null) => (v === null ? "-" : `${v} ms`);
  const pct = (v: number | null) => (v === null ? "n/a" : `${v}% of one core`);
  const p99ToTarget = ratioOrNull(r.detectionP99Ms, r.timeoutMs + 1_000);
  const peakRssToLimit = ratioOrNull(r.peakRssMb, 1_024);
  humanOutput(values.json).write(
    `${table(
      [
        ["agents", `${r.nodes} at 1 Hz (${r.heartbeatsPerSec} heartbeats/s measured)`],
        ["all joined after", ms(r.joinMs)],
        ["silent agents", `${r.killed}, detected ${r.detected}`],
        [
          "detection p50 / p99 / max",
          `${ms(r.detectionP50Ms)} / ${ms(r.detectionP99Ms)} / ${ms(r.detectionMaxMs)} (heartbeat timeout ${r.timeoutMs} ms; target p99 ≤ ${r.timeoutMs + 1_000} ms)`,
        ],
        [
          "  of which detector",
          `${ms(r.detectorP50Ms)} / ${ms(r.detectorP99Ms)} (last heartbeat → heartbeat.missed event; it checks every ${r.timeoutMs / 5} ms)`,
        ],
        [
          "  of which the rest",
          `${ms(r.engineP50Ms)} / ${ms(r.engineP99Ms)} (event time → audit record seen: the detector publishes, the engine folds and audits)`,
        ],
        ["control-plane CPU, steady", pct(r.cpuPercentSteady)],
        ["control-plane CPU, detecting", pct(r.cpuPercentDetection)],
        ["control-plane RSS", r.rssMb === null ? "n/a" : `${r.rssMb} MiB (peak ${r.peakRssMb} MiB; target < 1024 MiB)`],
        ["ratios to the targets", `detection p99 / (timeout + 1 s) ${p99ToTarget}, peak RSS / 1 GiB ${peakRssToLimit} (≤ 1 meets them)`],
      ],
      ["FLEET BENCHMARK", ""],
    )}\n`,
  );
  if (values.json) {
    printJson({
      nodes: r.nodes,
      killed: r.killed,
      detected: r.detected,
      detectionP50Ms: r.detectionP50Ms,
      detectionP99Ms: r.detectionP99Ms,
      detectionMaxMs: r.detectionMaxMs,
      timeoutMs: r.timeoutMs,
      cpuPercentSteady: r.cpuPercentSteady,
      cpuPercentDetection: r.cpuPercentDetection,
      rssMb: r.rssMb,
      peakRssMb: r.peakRssMb,
      joinMs: r.joinMs,
      p99ToTarget,
      peakRssToLimit,
    });
  }
  return r.detected === r.killed ? 0 : 1;
}
