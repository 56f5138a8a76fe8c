import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { createEvent } from "@fenceline/contracts";
import { connectNats, publishEvent, startNatsServer, type NatsServer } from "@fenceline/bus";
import { loadAllYaml } from "@fenceline/kubernetes";
import { Streams, fittingReplicas, provisionStreams } from "@fenceline/streams";
import { MIN_NATS_SERVER_VERSION, versionAtLeast } from "@fenceline/toolchain";
import { ROOT } from "../e2e/cli.js";
import { freePorts } from "../support/free-port.js";
import { waitFor } from "../engine/nats-helpers.js";

/**
 * deploy/nats.yaml as shipped: a three-server JetStream cluster. Its manifests are checked for
 * what the cluster relies on, and its nats.conf is run by three real nats-servers on loopback:
 * only what a pod gets from Kubernetes is replaced (the store's volume, the pod name in
 * SERVER_NAME, the routes' DNS names and the ports, all on one host here). The engine's
 * replica count for it must be 3, and the streams must keep working with one server killed.
 */
type Manifest = {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
};
const manifests = loadAllYaml(readFileSync(join(ROOT, "deploy", "nats.yaml"), "utf8")) as Manifest[];
const find = (kind: string, name: string) => manifests.find((m) => m.kind === kind && m.metadata.name === name);

const dir = mkdtempSync(join(tmpdir(), "fenceline-deploy-nats-"));
const servers: NatsServer[] = [];
let nc: NatsConnection | undefined;
afterAll(async () => {
  await nc?.close().catch(() => {});
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
});

describe("deploy/nats.yaml", () => {
  const statefulSet = find("StatefulSet", "fenceline-nats") as Manifest & {
    spec: {
      replicas: number;
      serviceName: string;
      template: { spec: { containers: Array<{ image: string; env: Array<{ name: string }> }> } };
    };
  };
  const conf = find("ConfigMap", "fenceline-nats")!.data!["nats.conf"]!;

  it("is a cluster of three servers, each routed to the others by a stable name, one disruption at a time", () => {
    expect(statefulSet.spec.replicas).toBe(3);
    const headless = find("Service", statefulSet.spec.serviceName) as Manifest & {
      spec: { clusterIP: string; publishNotReadyAddresses: boolean };
    };
    expect(headless.spec).toMatchObject({ clusterIP: "None", publishNotReadyAddresses: true });
    const routes = [...conf.matchAll(/nats:\/\/([a-z0-9.-]+):(\d+)/g)].map((m) => m[1]);
    expect(routes).toEqual([0, 1, 2].map((i) => `fenceline-nats-${i}.${statefulSet.spec.serviceName}.fenceline.svc`));
    expect(conf).toContain("server_name: $SERVER_NAME");
    expect(statefulSet.spec.template.spec.containers[0]!.env.map((e) => e.name)).toContain("SERVER_NAME");
    expect((find("PodDisruptionBudget", "fenceline-nats") as Manifest & { spec: { maxUnavailable: number } }).spec.maxUnavailable).toBe(1);
    // The image runs a server Fenceline supports.
    const tag = statefulSet.spec.template.spec.containers[0]!.image.split(":")[1]!;
    expect(versionAtLeast(tag.split("-")[0]!, MIN_NATS_SERVER_VERSION)).toBe(true);
  });

  it("its nats.conf forms a JetStream cluster where Fenceline provisions R3 streams that survive a server's death", {
    timeout: 90_000,
  }, async () => {
    // Six distinct ports at once: three routes and three monitors (one at a time could repeat).
    const ports = await freePorts(6);
    const clusterPorts = ports.slice(0, 3);
    const httpPorts = ports.slice(3);
    for (const i of [0, 1, 2]) {
      const file = join(dir, `nats-${i}.conf`);
      let text = conf
        .replace("server_name: $SERVER_NAME", `server_name: fenceline-nats-${i}`)
        .replace("store_dir: /data", `store_dir: ${JSON.stringify(join(dir, `data-${i}`))}`)
        .replace(/http_port: \d+/, `http_port: ${httpPorts[i]}`)
        .replace(/(cluster \{[\s\S]*?)port: 6222/, `$1port: ${clusterPorts[i]}`);
      text = text.replace(
        /nats:\/\/fenceline-nats-(\d)\.[a-z0-9.-]+:6222/g,
        (_, j: string) => `nats://127.0.0.1:${clusterPorts[Number(j)]}`,
      );
      writeFileSync(file, text);
      // The client port is picked by the launcher (-p -1); everything else is the file's.
      servers.push(await startNatsServer({ configFile: file, jetstream: false }));
    }
    nc = await connectNats(servers.map((s) => s.url).join(","), { name: "deploy-nats-test" });
    await waitFor("the cluster to advertise its three servers", () => Promise.resolve((nc!.info?.connect_urls ?? []).length === 3), 30_000);
    const replicas = await fittingReplicas(nc);
    expect(replicas).toBe(3);
    await provisionStreams(nc, { replicas, partitions: 2 });
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(Streams.events);
    expect(info.config.num_replicas).toBe(3);

    // Kill the FL_EVENTS leader: the stream elects another and takes events again.
    const leader = info.cluster!.leader!;
    const victim = servers[Number(leader.split("-").at(-1))]!;
    process.kill(victim.pid, "SIGKILL");
    const js = jetstream(nc);
    const event = createEvent("node.joined", {
      id: "after-kill",
      node: "node-1",
      at: Date.now(),
      source: "test",
      data: { bootId: "b1", incarnation: 1 },
    });
    await waitFor(
      "a publish to succeed after the leader died",
      () =>
        publishEvent(js, event).then(
          () => true,
          () => false,
        ),
      30_000,
    );
    expect((await jsm.streams.info(Streams.events)).cluster?.leader).not.toBe(leader);
  });
});
