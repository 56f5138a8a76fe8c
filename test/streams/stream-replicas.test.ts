import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { connectNats, startNatsCluster } from "@fenceline/bus";
import { Streams } from "@fenceline/streams";
import { startUp, type RunningUp } from "../e2e/cli.js";
import { runMain } from "../replay/run-main.js";

describe("fenceline up --stream-replicas", () => {
  it("refuses a count JetStream cannot place, before connecting", async () => {
    for (const [value, message] of [
      ["6", "--stream-replicas must be at most 5 (JetStream's limit)"],
      ["0", "--stream-replicas must be an integer ≥ 1"],
      ["two", "--stream-replicas must be an integer ≥ 1"],
    ] as const) {
      const r = await runMain(["up", "--stream-replicas", value, "--server", "nats://127.0.0.1:1"]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(message);
    }
  });

  it("provisions the count it is given: two replicas on a cluster of two servers", async () => {
    const cluster = await startNatsCluster("fl-stream-replicas", { size: 2 });
    let up: RunningUp | undefined;
    let nc: NatsConnection | undefined;
    try {
      up = await startUp(["--server", cluster.url, "--stream-replicas", "2", "--metrics-port", "0"], { timeoutMs: 60_000 });
      nc = await connectNats(cluster.url, { name: "stream-replicas-test" });
      const info = await (await jetstreamManager(nc)).streams.info(Streams.events);
      expect(info.config.num_replicas).toBe(2);
      expect(info.cluster?.replicas).toHaveLength(1);
    } finally {
      await nc?.close();
      await up?.stop();
      await cluster.stop();
    }
  }, 90_000);
});
