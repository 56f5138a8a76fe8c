import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, startNatsServer, type NatsServer } from "@fenceline/bus";
import { DeadLetter, NodeEvent, systemClock } from "@fenceline/contracts";
import { Buckets, Streams, Subjects, provisionStreams } from "@fenceline/streams";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runSerfHandler } from "../src/serf-handler.js";
import { readStream } from "../../../test/support/read-stream.js";
import { freePort } from "../../../test/support/free-port.js";

const SERF = "/usr/bin/serf";
const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "cli", "dist", "bin.js");
const haveSerf = existsSync(SERF);
const haveCli = existsSync(CLI);

let server: NatsServer;
let nc: NatsConnection;
let dir: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connectNats(server.url, { name: "serf-handler-test" });
  await provisionStreams(nc);
  dir = await mkdtemp(join(tmpdir(), "fl-serf-"));
  // Nodes the engine knows; the handler reports only those.
  const kv = await new Kvm(nc).open(Buckets.nodes);
  for (const node of ["serf-a", "serf-b", "known-1"]) {
    await kv.put(node, JSON.stringify({ v: 1, node, path: "healthy", context: { epoch: 0, since: 0 } }));
  }
});
afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await nc?.close();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const nodeEvents = async (node: string) =>
  (await readStream(nc, Streams.events, Subjects.storedEvent(node))).map((m) => NodeEvent.parse(m.data));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

describe("runSerfHandler (stdin lines in, FL_EVENTS out)", () => {
  const lines = "known-1\t10.0.0.1\t\t\nstranger\t10.0.0.2\t\t\nBad_Name\t10.0.0.3\t\t\n";

  it("publishes for known nodes only, dead-letters bad names, and a repeat is stored once", async () => {
    const said: string[] = [];
    // One id window for both runs (a real retry comes within the same window, or makes a harmless duplicate).
    const clock = { ...systemClock, now: () => 1_800_000_001_000 };
    const run = () =>
      runSerfHandler({
        env: { SERF_EVENT: "member-failed", SERF_SELF_NAME: "observer" },
        stdin: lines,
        server: server.url,
        nc,
        clock,
        say: (l) => said.push(l),
      });
    const first = await run();
    expect(first.exitCode).toBe(0);
    expect(first.published).toEqual([
      { node: "known-1", type: "signal.unhealthy", id: expect.stringMatching(/^serf:member-failed:known-1:/), duplicate: false },
    ]);
    expect(first.skipped).toEqual([{ node: "stranger", why: expect.stringMatching(/not a Fenceline node/) }]);
    expect(first.rejected).toEqual([{ line: "Bad_Name\t10.0.0.3\t\t", error: expect.stringMatching(/is not a node name/) }]);
    expect(said.some((l) => l.startsWith("dead letter: {") && l.includes('"reason":"schema"'))).toBe(true);

    const again = await run();
    expect(again.published[0]?.duplicate).toBe(true);
    expect((await nodeEvents("known-1")).filter((e) => e.type === "signal.unhealthy")).toHaveLength(1);
    expect(await nodeEvents("stranger")).toEqual([]);
    const letters = (await readStream(nc, Streams.deadLetters, Subjects.deadLetter("serf-handler"))).map((m) => DeadLetter.parse(m.data));
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ subject: "serf.member-failed", reason: "schema", payload: "Bad_Name\t10.0.0.3\t\t" });
  });

  it("ignores events that are not membership events, exit 0", async () => {
    const said: string[] = [];
    const outcome = await runSerfHandler({
      env: { SERF_EVENT: "user", SERF_USER_EVENT: "deploy" },
      stdin: "payload",
      server: "nats://127.0.0.1:1",
      say: (l) => said.push(l),
    });
    expect(outcome.exitCode).toBe(0);
    expect(said).toEqual(['ignored: serf event "user" is not a membership event']);
  });

  it("exits 1 with one line when NATS cannot be reached", async () => {
    const said: string[] = [];
    const outcome = await runSerfHandler({
      env: { SERF_EVENT: "member-join" },
      stdin: lines,
      server: "nats://127.0.0.1:1",
      timeoutMs: 1_000,
      say: (l) => said.push(l),
    });
    expect(outcome.exitCode).toBe(1);
    expect(said.at(-1)).toMatch(/^cannot publish 2 event\(s\): cannot connect to NATS/);
  });
});

const why = !haveSerf ? `${SERF} is not installed (apt-get install serf)` : "the CLI is not built (pnpm exec turbo run build)";
describe.skipIf(!haveSerf || !haveCli)(`two real serf agents on loopback${haveSerf && haveCli ? "" : ` — SKIPPED: ${why}`}`, () => {
  async function startSerf(name: string, join?: number) {
    const bind = await freePort();
    const rpc = await freePort();
    const handler = `${process.execPath} ${CLI} serf-handler --server ${server.url} 2>>${dir}/handler-${name}.log`;
    const args = [
      "agent",
      "-node",
      name,
      "-bind",
      `127.0.0.1:${bind}`,
      "-rpc-addr",
      `127.0.0.1:${rpc}`,
      "-profile",
      "local",
      "-log-level",
      "warn",
      "-event-handler",
      handler,
    ];
    if (join) args.push("-join", `127.0.0.1:${join}`);
    const child = spawn(SERF, args, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, FENCELINE_LOG_LEVEL: "warn" } });
    children.push(child);
    return { child, bind };
  }

  it("member-join → signal.healthy; kill -9 one agent → the other's handler publishes member-failed (signal.unhealthy); back → healthy; graceful leave → healthy", async () => {
    const a = await startSerf("serf-a");
    await sleep(300);
    const b = await startSerf("serf-b", a.bind);
    // Both handlers see the join; one stored event per window.
    await waitFor("member-join of serf-b", async () => (await nodeEvents("serf-b")).find((e) => e.type === "signal.healthy"), 10_000);

    const killedAt = Date.now();
    b.child.kill("SIGKILL");
    const failed = await waitFor(
      "member-failed of serf-b",
      async () => (await nodeEvents("serf-b")).find((e) => e.type === "signal.unhealthy"),
      20_000,
    );
    expect(failed).toMatchObject({ node: "serf-b", source: "serf:serf-a", data: { signal: "serf" } });
    expect(failed.type === "signal.unhealthy" && failed.data.since).toBeGreaterThanOrEqual(killedAt);
    expect(failed.id).toMatch(/^serf:member-failed:serf-b:\d+$/);

    // The failed member comes back: serf reports an ordinary member-join.
    const back = await startSerf("serf-b", a.bind);
    const rejoined = await waitFor(
      "member-join after the failure",
      async () => (await nodeEvents("serf-b")).find((e) => e.type === "signal.healthy" && e.at > failed.at),
      10_000,
    );
    expect(rejoined.source).toMatch(/^serf:/);

    // A graceful leave (SIGINT) is not a failure.
    const leftAt = Date.now();
    back.child.kill("SIGINT");
    await waitFor(
      "member-leave of serf-b",
      async () => (await nodeEvents("serf-b")).find((e) => e.id.startsWith("serf:member-leave:serf-b:")),
      10_000,
    );
    const afterLeave = (await nodeEvents("serf-b")).filter((e) => e.at >= leftAt);
    expect(afterLeave.map((e) => e.type)).not.toContain("signal.unhealthy");
    const log = await readFile(join(dir, "handler-serf-a.log"), "utf8").catch(() => "");
    expect(log).toContain("member-failed serf-b: signal.unhealthy");
  }, 45_000);
});
