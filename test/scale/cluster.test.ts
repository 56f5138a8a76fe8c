// Fewer partitions than the default 16: each is an R3 consumer, and creating R3 assets on a
// fresh cluster is slow. Read once, before anything computes a subject (this file runs in its
// own process).
process.env.FENCELINE_PARTITIONS = "4";

import { afterAll, describe, expect, it } from "vitest";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { NODE_EVENT_TYPES, NodeEvent, parseMessage, type AuditRecord } from "@fenceline/contracts";
import { connectNats, type NatsServer } from "@fenceline/bus";
import { Streams, fittingReplicas, provisionStreams } from "@fenceline/streams";
import { runDemo, type RunningDemo } from "@fenceline/cli";
import { readStream, testLog, waitFor } from "../engine/nats-helpers.js";
import { startNatsCluster } from "../support/nats-cluster.js";

/**
 * Fenceline on a three-server NATS cluster (loopback), every stream, consumer and bucket with
 * three replicas. The demo's control plane and simulated fleet connect with all three URLs; a
 * machine crashes, and while Fenceline fences it the server leading FL_EVENTS is killed
 * (SIGKILL). The remediation must complete (the node back to healthy, its stateful workload
 * never running twice) and nothing may be lost: every event in FL_EVENTS has exactly one audit
 * record in FL_AUDIT.
 */
const servers: NatsServer[] = [];
let demo: RunningDemo | undefined;
let nc: NatsConnection | undefined;
afterAll(async () => {
  await demo?.stop().catch(() => {});
  await nc?.close().catch(() => {});
  await Promise.all(servers.map((s) => s.stop()));
});

describe("a three-server NATS cluster (R3)", () => {
  it("completes a remediation while the FL_EVENTS leader is killed, losing no event and no audit record", async () => {
    servers.push(...(await startNatsCluster("fl-scale")));
    const urls = servers.map((s) => s.url).join(",");
    nc = await connectNats(urls, { name: "cluster-test" });
    // The replica count that fits a cluster of three is 3 (the control plane computes the same).
    expect(await fittingReplicas(nc)).toBe(3);
    // JetStream elects its meta leader and learns its peers a little after the routes are up:
    // provisioning waits for that (clusterNotReady).
    await provisionStreams(nc, { replicas: 3 });
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(Streams.events)).cluster?.replicas).toHaveLength(2);

    let killed: string | null = null;
    const kill = async () => {
      const leader = (await jsm.streams.info(Streams.events)).cluster?.leader;
      const index = servers.findIndex((_, i) => `n${i}` === leader);
      const victim = servers[Math.max(index, 0)]!;
      process.kill(victim.pid, "SIGKILL");
      killed = leader ?? "n0";
    };
    let fencing = false;
    demo = await runDemo({
      server: urls,
      nodes: 6,
      scenario: "crash",
      timeoutMs: 50_000,
      log: testLog("demo"),
      progress: (line) => {
        // "  node-3   suspect.requestingSlot → fencing": kill the leader as fencing starts.
        if (!fencing && / → fencing/.test(line)) {
          fencing = true;
          void kill();
        }
      },
    });
    const { summary } = demo;
    expect(killed).not.toBeNull();
    expect(summary.invariantViolations).toEqual([]);
    expect(summary.faults).toHaveLength(1);
    const [fault] = summary.faults;
    expect(fault).toMatchObject({ kind: "crash", finalState: "healthy" });
    expect(fault!.fencedAfterMs).not.toBeNull();
    expect(fault!.workloadsRecoveredAfterMs).not.toBeNull();
    expect(summary.ok).toBe(true);

    // Nothing lost: every valid event up to now gets exactly one audit record.
    const last = (await jsm.streams.info(Streams.events)).state.last_seq;
    let events: number[] = [];
    let audit: AuditRecord[] = [];
    await waitFor(
      "every event to be audited",
      async () => {
        events = await validEventSeqs(jsm, last);
        audit = (await readStream(jsm, Streams.audit)).map((m) => m.json<AuditRecord>()).filter((r) => r.seq <= last);
        return new Set(audit.map((r) => r.seq)).size >= events.length;
      },
      15_000,
    );
    const seqs = audit.map((r) => r.seq);
    expect(seqs.length - new Set(seqs).size).toBe(0);
    expect([...seqs].sort((x, y) => x - y)).toEqual(events);
    // The crashed node's trail went all the way round (back after 5 s: its reboot confirms
    // fencing, so it rejoins without remediating).
    const trail = audit.filter((r) => r.node === fault!.node && r.changed).map((r) => r.to.split(".")[0]);
    expect(trail).toEqual(expect.arrayContaining(["suspect", "fencing", "rejoining", "healthy"]));
    expect(trail.at(-1)).toBe("healthy");
  }, 90_000);
});

/** Sequences of the valid events in FL_EVENTS up to `last` (what the engine applies). */
async function validEventSeqs(jsm: JetStreamManager, last: number): Promise<number[]> {
  const out: number[] = [];
  for (const m of await readStream(jsm, Streams.events)) {
    if (m.seq > last) continue;
    if (parseMessage(NodeEvent, m.data, { knownTypes: NODE_EVENT_TYPES }).ok) out.push(m.seq);
  }
  return out;
}
