import { JetStreamApiError } from "@nats-io/jetstream";
import { TimeoutError } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { ClusterNotReadyError, clusterNotReady, createClusterWait } from "../src/cluster-ready.js";

const apiError = (code: number, err_code: number, description: string) => new JetStreamApiError({ code, err_code, description });
const noPeers = () => apiError(400, 10005, "no suitable peers for placement, peer offline");

describe("clusterNotReady", () => {
  it("waits for a cluster that cannot answer or place yet", () => {
    expect(clusterNotReady(apiError(503, 10008, "JetStream system temporarily unavailable"))).toBe(
      "JetStream system temporarily unavailable",
    );
    expect(clusterNotReady(noPeers())).toBe("no suitable peers for placement, peer offline");
    // What nats-server 2.15.3 answers while one server of three has not started yet.
    expect(clusterNotReady(apiError(400, 10005, "no suitable peers for placement"))).toBe(
      "no suitable peers for placement: fewer servers have joined the cluster than the replicas asked for (one still starting?)",
    );
    // What it answers for ~200 ms after a stream's replicas were raised, to raising its consumers'.
    expect(clusterNotReady(apiError(400, 10126, "consumer config replica count exceeds parent stream"))).toBe(
      "consumer config replica count exceeds parent stream: the stream is still adding the replicas asked for",
    );
    expect(clusterNotReady(new TimeoutError())).toBe("a JetStream API request timed out");
    expect(clusterNotReady(new Error("request failed", { cause: new TimeoutError() }))).toBe("a JetStream API request timed out");
  });

  it("does not wait for placement refused for other reasons, nor for any other failure", () => {
    expect(clusterNotReady(apiError(400, 10005, "no suitable peers for placement, insufficient storage"))).toBeNull();
    expect(clusterNotReady(apiError(500, 10074, "replicas > 1 not supported in non-clustered mode"))).toBeNull();
    expect(clusterNotReady(apiError(404, 10059, "stream not found"))).toBeNull();
    expect(clusterNotReady(new Error("permissions violation"))).toBeNull();
    expect(clusterNotReady("timeout")).toBeNull();
  });
});

describe("createClusterWait", () => {
  /** A clock the wait's sleeps move on, so nothing really waits. */
  function virtualTime() {
    let now = Date.now();
    const real = Date.now;
    const slept: number[] = [];
    Date.now = () => now;
    return {
      sleep: async (ms: number) => {
        slept.push(ms);
        now += ms;
      },
      slept,
      restore: () => (Date.now = real),
    };
  }

  it("tries again, backing off, until the request succeeds, with a warning at most every 5 s", async () => {
    const time = virtualTime();
    try {
      const warnings: string[] = [];
      const whenReady = createClusterWait({ sleep: time.sleep, log: { warn: (_o, msg) => warnings.push(msg!) } });
      let calls = 0;
      const value = await whenReady("stream:FL_EVENTS", async () => {
        calls += 1;
        if (calls < 8) throw noPeers();
        return "placed";
      });
      expect(value).toBe("placed");
      expect(time.slept).toEqual([250, 500, 1_000, 2_000, 2_000, 2_000, 2_000]);
      expect(warnings).toEqual([
        "stream:FL_EVENTS: the JetStream cluster is not ready (no suitable peers for placement, peer offline); waiting",
        "stream:FL_EVENTS: the JetStream cluster is not ready (no suitable peers for placement, peer offline); waiting",
      ]);
    } finally {
      time.restore();
    }
  });

  it("gives up once waitMs has passed, saying how long and why; any other failure is thrown at once", async () => {
    const time = virtualTime();
    try {
      const whenReady = createClusterWait({ sleep: time.sleep, waitMs: 5_000 });
      const err = await whenReady("stream:FL_EVENTS", () => Promise.reject(noPeers())).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ClusterNotReadyError);
      expect((err as Error).message).toBe("the JetStream cluster was not ready within 5 s (no suitable peers for placement, peer offline)");
      expect((err as Error).cause).toBeInstanceOf(JetStreamApiError);
      expect(time.slept).toEqual([250, 500, 1_000, 2_000, 1_250]);
      const denied = new Error("permissions violation");
      await expect(createClusterWait({ sleep: time.sleep })("x", () => Promise.reject(denied))).rejects.toBe(denied);
    } finally {
      time.restore();
    }
  });
});
