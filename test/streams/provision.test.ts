import { jetstreamManager } from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// streams cannot depend on bus (bus depends on streams), so the test reaches the launcher by path.
import { connectNats, startNatsCluster, startNatsServer, type NatsCluster, type NatsServer } from "@fenceline/bus";
import { ErrorCode, isFencelineError } from "@fenceline/contracts";
import { Buckets, Consumers, Streams, createDefinitions, fittingReplicas, provisionStreams } from "@fenceline/streams";

describe("provisionStreams", () => {
  let server: NatsServer;
  let nc: NatsConnection;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connectNats(server.url, { name: "provision-test" });
  });
  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it("creates every stream, consumer and bucket on the first run", async () => {
    const report = await provisionStreams(nc);
    expect(report.updated).toEqual([]);
    expect(report.unchanged).toEqual([]);
    expect(report.created).toEqual([
      "stream:FL_EVENTS",
      "stream:FL_COMMANDS",
      "stream:FL_AUDIT",
      "stream:FL_DLQ",
      ...Array.from({ length: 16 }, (_, p) => `consumer:FL_EVENTS/engine-${p}`),
      "consumer:FL_COMMANDS/actuator-cluster",
      "consumer:FL_COMMANDS/actuator-agent",
      "consumer:FL_COMMANDS/actuator-fence",
      "consumer:FL_COMMANDS/actuator-provisioner",
      "consumer:FL_COMMANDS/actuator-guard",
      "bucket:FL_NODES",
      "bucket:FL_FLEET",
      "bucket:FL_CONFIG",
      "bucket:FL_LEASES",
      "bucket:FL_MEMBERS",
    ]);

    const jsm = await jetstreamManager(nc);
    const events = await jsm.streams.info(Streams.events);
    expect(events.config).toMatchObject({
      subjects: ["fl.evt.*"],
      subject_transform: { src: "fl.evt.*", dest: "fl.evt.{{partition(16,1)}}.{{wildcard(1)}}" },
      retention: "limits",
      duplicate_window: nanos(120_000),
      allow_direct: true,
    });
    const commands = await jsm.streams.info(Streams.commands);
    expect(commands.config.retention).toBe("workqueue");
    const dlq = await jsm.streams.info(Streams.deadLetters);
    expect(dlq.config.max_age).toBe(nanos(7 * 24 * 3_600_000));
    const actuator = await jsm.consumers.info(Streams.commands, Consumers.actuator("fence"));
    expect(actuator.config).toMatchObject({
      filter_subject: "fl.cmd.fence.*",
      ack_policy: "explicit",
      max_deliver: 200,
      ack_wait: nanos(30_000),
    });
  });

  it("fits one replica to a single server", async () => {
    expect(await fittingReplicas(nc)).toBe(1);
  });

  it("reports everything unchanged on the second run", async () => {
    const report = await provisionStreams(nc);
    expect(report.created).toEqual([]);
    expect(report.updated).toEqual([]);
    expect(report.unchanged).toHaveLength(30);
  });

  it("updates a stream, a consumer and a bucket whose definition changed", async () => {
    const definitions = createDefinitions();
    const audit = definitions.streams.find((s) => s.name === Streams.audit)!;
    audit.duplicate_window = nanos(60_000);
    const engine = definitions.consumers.find((c) => c.config.durable_name === Consumers.enginePartition(3))!;
    engine.config.max_ack_pending = 500;
    const fleet = definitions.buckets.find((b) => b.name === Buckets.fleet)!;
    fleet.history = 20;

    const report = await provisionStreams(nc, { definitions });
    expect(report.created).toEqual([]);
    expect(report.updated).toEqual(["stream:FL_AUDIT", "consumer:FL_EVENTS/engine-3", "bucket:FL_FLEET"]);
    expect(report.unchanged).toHaveLength(27);

    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(Streams.audit)).config.duplicate_window).toBe(nanos(60_000));
    expect((await jsm.consumers.info(Streams.events, Consumers.enginePartition(3))).config.max_ack_pending).toBe(500);

    // And back to the declared definitions.
    const restored = await provisionStreams(nc);
    expect(restored.updated).toEqual(["stream:FL_AUDIT", "consumer:FL_EVENTS/engine-3", "bucket:FL_FLEET"]);
  });

  it("leaves usable KV buckets with the declared history", async () => {
    const kvm = new Kvm(nc);
    for (const [name, history] of [
      [Buckets.nodes, 1],
      [Buckets.fleet, 10],
      [Buckets.config, 5],
      [Buckets.members, 64],
    ] as const) {
      const kv = await kvm.open(name);
      expect((await kv.status()).history).toBe(history);
      const rev = await kv.put("probe", "x");
      expect((await kv.get("probe"))?.revision).toBe(rev);
    }
  });
});

describe("provisionStreams on a JetStream cluster that cannot place yet", () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;

  beforeAll(async () => {
    cluster = await startNatsCluster("fl-provision");
    nc = await connectNats(cluster.servers[0]!.url, { name: "provision-cluster-test" });
  });
  afterAll(async () => {
    await nc?.close();
    await cluster?.stop();
  });

  const definitions = createDefinitions({ replicas: 3 });
  const onlyStream = (name: string) => ({ streams: definitions.streams.filter((s) => s.name === name), consumers: [], buckets: [] });
  const warnings: string[] = [];
  const log = { info: () => {}, warn: (_o: object, msg?: string) => warnings.push(msg ?? "") };

  const kill = (index: number) => process.kill(cluster.servers[index]!.pid, "SIGKILL");
  const NOT_READY = /\((a JetStream API request timed out|JetStream system temporarily unavailable)\)/;

  it("waits while the cluster forms and while it has no meta leader, and gives up after clusterWaitMs, naming why", async () => {
    // Right after the servers start: no meta leader yet, or a server not heard from yet ("no
    // suitable peers for placement, peer offline"), as the case may be.
    const first = await provisionStreams(nc, { definitions: onlyStream(Streams.events), log });
    expect(first.created).toEqual([`stream:${Streams.events}`]);

    // Two of three servers gone: no quorum, so no meta leader; one comes back.
    kill(1);
    kill(2);
    warnings.length = 0;
    const provisioning = provisionStreams(nc, { definitions: onlyStream(Streams.audit), log });
    await expect.poll(() => warnings.length, { timeout: 20_000 }).toBeGreaterThan(0);
    expect(warnings[0]).toMatch(/^(JetStream|stream:FL_AUDIT): the JetStream cluster is not ready \(.*\); waiting$/);
    expect(warnings[0]).toMatch(NOT_READY);
    await cluster.restart(1);
    // Created by this request, or by one that timed out here and was carried out once the
    // cluster had a leader again (then found as it should be: unchanged).
    const done = await provisioning;
    expect([...done.created, ...done.unchanged]).toEqual([`stream:${Streams.audit}`]);
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(Streams.audit)).config.num_replicas).toBe(3);

    kill(1);
    const err = await provisionStreams(nc, { definitions: onlyStream(Streams.deadLetters), clusterWaitMs: 1_500 }).catch((e: unknown) => e);
    expect(isFencelineError(err, ErrorCode.NatsUnavailable)).toBe(true);
    expect((err as Error).message).toMatch(
      /^cannot provision (the streams|stream:FL_DLQ): the JetStream cluster was not ready within \d+ s \((a JetStream API request timed out|JetStream system temporarily unavailable)\)$/,
    );
  }, 120_000);
});

describe("provisionStreams on a JetStream cluster whose last server has not started yet", () => {
  it("waits for it (as for a pod scheduled late), names why, and places R3 once it joins", async () => {
    const cluster = await startNatsCluster("fl-provision-late", { started: 2 });
    let nc: NatsConnection | undefined;
    try {
      nc = await connectNats(cluster.servers[0]!.url, { name: "provision-late-test" });
      // Two servers up, and they know each other: the count that fits is still the cluster's 3, not 2.
      await expect.poll(() => nc?.info?.connect_urls?.length ?? 0, { timeout: 10_000 }).toBe(2);
      expect(await fittingReplicas(nc)).toBe(3);
      const warnings: string[] = [];
      const log = { info: () => {}, warn: (_o: object, msg?: string) => warnings.push(msg ?? "") };
      const only = createDefinitions({ replicas: 3 });
      const definitions = { streams: only.streams.filter((s) => s.name === Streams.events), consumers: [], buckets: [] };
      const provisioning = provisionStreams(nc, { definitions, log });
      // The two servers elect a meta leader, which knows only them: placement of three replicas is refused.
      await expect.poll(() => warnings.some((w) => w.includes("fewer servers have joined")), { timeout: 20_000 }).toBe(true);
      expect(warnings.find((w) => w.includes("fewer servers have joined"))).toMatch(
        /^(JetStream|stream:FL_EVENTS): the JetStream cluster is not ready \(no suitable peers for placement: fewer servers have joined the cluster than the replicas asked for \(one still starting\?\)\); waiting$/,
      );
      await cluster.restart(2);
      expect((await provisioning).created).toEqual([`stream:${Streams.events}`]);
      const jsm = await jetstreamManager(nc);
      expect((await jsm.streams.info(Streams.events)).cluster?.replicas).toHaveLength(2);
    } finally {
      await nc?.close();
      await cluster.stop();
    }
  }, 60_000);

  it("raises streams, consumers and buckets created with fewer replicas (R2, as engines before stop 29 could) to R3", async () => {
    const cluster = await startNatsCluster("fl-provision-raise");
    let nc: NatsConnection | undefined;
    try {
      nc = await connectNats(cluster.url, { name: "provision-raise-test" });
      const first = await provisionStreams(nc, { replicas: 2, partitions: 2 });
      expect(await fittingReplicas(nc)).toBe(3);
      const raised = await provisionStreams(nc, { replicas: 3, partitions: 2 });
      expect(raised.created).toEqual([]);
      // FL_COMMANDS is a work queue: nats-server raises its consumers with it, so they are found unchanged.
      expect(raised.unchanged.every((name) => name.startsWith(`consumer:${Streams.commands}/`))).toBe(true);
      expect([...raised.updated, ...raised.unchanged].sort()).toEqual([...first.created].sort());
      const jsm = await jetstreamManager(nc);
      // Every asset asks for three replicas, and has them once its new peers have joined.
      const replicas = async () => {
        const out: Array<[string, number | undefined, number]> = [];
        for await (const s of jsm.streams.list()) {
          out.push([s.config.name, s.config.num_replicas, 1 + (s.cluster?.replicas?.length ?? 0)]);
          for await (const c of jsm.consumers.list(s.config.name)) {
            out.push([`${s.config.name}/${c.name}`, c.config.num_replicas, 1 + (c.cluster?.replicas?.length ?? 0)]);
          }
        }
        return out;
      };
      await expect
        .poll(async () => (await replicas()).filter(([, asked, has]) => asked !== 3 || has !== 3), { timeout: 10_000 })
        .toEqual([]);
      expect(await replicas()).toHaveLength(first.created.length);
    } finally {
      await nc?.close();
      await cluster.stop();
    }
  }, 90_000);
});
