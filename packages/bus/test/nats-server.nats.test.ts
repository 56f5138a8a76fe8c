import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { ErrorCode, isFencelineError } from "@fenceline/contracts";
import { createClusterWait } from "@fenceline/streams";
import { describe, expect, it } from "vitest";
import { MIN_NATS_SERVER_VERSION, natsServerVersionOf, versionAtLeast } from "@fenceline/toolchain";
import { connectNats, natsServerBinary, startNatsServer } from "../src/index.js";
import { freePort } from "../../../test/support/free-port.js";
import { startNatsCluster } from "../../../test/support/nats-cluster.js";
import { startOldNatsServer } from "../../../test/support/old-nats-server.js";

describe("startNatsServer", () => {
  it("starts on a random loopback port and removes its temporary store on stop", async () => {
    const a = await startNatsServer();
    const b = await startNatsServer();
    try {
      expect(a.url).toBe(`nats://127.0.0.1:${a.port}`);
      expect(a.port).toBeGreaterThan(0);
      expect(b.port).not.toBe(a.port);
      expect(existsSync(a.storeDir)).toBe(true);
      const nc = await connectNats(a.url, { name: "launcher-test" });
      expect(nc.info?.jetstream).toBe(true);
      await nc.close();
    } finally {
      await a.stop();
      await b.stop();
    }
    expect(existsSync(a.storeDir)).toBe(false);
    expect(() => process.kill(a.pid, 0)).toThrow();
  });

  it("keeps a store directory the caller gave", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fenceline-test-store-"));
    try {
      const server = await startNatsServer({ storeDir: dir });
      expect(server.storeDir).toBe(dir);
      await server.stop();
      expect(existsSync(dir)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("fails with the server's own error when it cannot start", async () => {
    const err = await startNatsServer({ extraArgs: ["--no-such-flag"] }).catch((e: unknown) => e);
    expect(isFencelineError(err)).toBe(true);
    expect((err as Error).message).toMatch(/nats-server did not start/);
    expect((err as Error).message).toMatch(/no-such-flag/);
  });

  it("runs a nats-server at least as new as the minimum Fenceline supports", async () => {
    const binary = await natsServerBinary();
    const version = natsServerVersionOf(binary);
    expect(version).not.toBeNull();
    expect(versionAtLeast(version!, MIN_NATS_SERVER_VERSION)).toBe(true);
  });

  it("names the failing step and the ways out when no nats-server can be had", async () => {
    const saved = { PATH: process.env.PATH, FENCELINE_CACHE: process.env.FENCELINE_CACHE };
    const emptyCache = mkdtempSync(join(tmpdir(), "fenceline-empty-cache-"));
    // No go and no nats-server on PATH, an empty cache: nothing to run and nothing to build with.
    process.env.PATH = "/nonexistent";
    process.env.FENCELINE_CACHE = emptyCache;
    try {
      const err = await natsServerBinary().catch((e: unknown) => e);
      expect(isFencelineError(err, ErrorCode.NatsServerMissing)).toBe(true);
      expect((err as Error).message).toMatch(/find-go failed/);
      expect((err as Error).message).toMatch(/NATS_URL/);
      expect((err as Error).message).toContain(MIN_NATS_SERVER_VERSION);
    } finally {
      process.env.PATH = saved.PATH;
      if (saved.FENCELINE_CACHE === undefined) delete process.env.FENCELINE_CACHE;
      else process.env.FENCELINE_CACHE = saved.FENCELINE_CACHE;
      rmSync(emptyCache, { recursive: true, force: true });
    }
  });

  it("forms a 3-node JetStream cluster", { timeout: 30_000 }, async () => {
    const servers = await startNatsCluster("fl-test");
    try {
      const nc0 = await connectNats(servers[0]!.url, { name: "cluster-test-0" });
      const nc2 = await connectNats(servers[2]!.url, { name: "cluster-test-2" });
      const sub = nc2.subscribe("fl.test.route", { max: 1 });
      await nc2.flush();
      // The routes come up asynchronously; keep publishing until one message crosses.
      const timer = setInterval(() => nc0.publish("fl.test.route", "hello"), 50);
      for await (const m of sub) expect(m.string()).toBe("hello");
      clearInterval(timer);
      // JetStream elects its meta leader, and hears from every server, a little later: an R3
      // stream is the proof it works, placed once the cluster can (as provisionStreams waits).
      // (provisionStreams({ replicas: 3 }) works too, but takes ~6 s for its 13 R3 assets.)
      const jsm = await jetstreamManager(nc0, { checkAPI: false, timeout: 1_000 });
      await createClusterWait({ waitMs: 20_000 })("stream R3", () => jsm.streams.add({ name: "R3", subjects: ["r3.>"], num_replicas: 3 }));
      expect((await jsm.streams.info("R3")).cluster?.replicas).toHaveLength(2);
      await nc0.close();
      await nc2.close();
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  });
});

describe("connectNats", () => {
  it("names the URL when the first connect fails", async () => {
    const port = await freePort();
    const url = `nats://127.0.0.1:${port}`;
    const err = await connectNats(url, { name: "nobody", timeoutMs: 1_000 }).catch((e: unknown) => e);
    expect(isFencelineError(err, ErrorCode.NatsUnavailable)).toBe(true);
    expect((err as Error).message).toContain(url);
  });

  it("refuses a server older than the minimum, naming both versions, and closes the connection", async () => {
    const old = await startOldNatsServer("2.9.10");
    try {
      const err = await connectNats(old.url, { name: "too-old", timeoutMs: 2_000 }).catch((e: unknown) => e);
      expect(isFencelineError(err, ErrorCode.NatsServerTooOld)).toBe(true);
      expect((err as Error).message).toBe(
        `nats-server 2.9.10 at ${old.url} is too old: Fenceline needs nats-server ${MIN_NATS_SERVER_VERSION} or newer (see the README)`,
      );
    } finally {
      await old.stop();
    }
  });

  it("accepts the server it runs", async () => {
    const server = await startNatsServer({ jetstream: false });
    try {
      const nc = await connectNats(server.url, { name: "current" });
      expect(versionAtLeast(nc.info!.version, MIN_NATS_SERVER_VERSION)).toBe(true);
      await nc.close();
    } finally {
      await server.stop();
    }
  });
});
