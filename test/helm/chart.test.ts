import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectNats, startNatsServer, type NatsServer } from "@fenceline/bus";
import { loadAllYaml } from "@fenceline/kubernetes";
import { Streams, provisionStreams } from "@fenceline/streams";
import { jetstreamManager } from "@nats-io/jetstream";
import { ensureBinary } from "@fenceline/toolchain";
import { ROOT } from "../e2e/cli.js";
import { CHART, renderChart, type Manifest } from "../support/helm.js";
import { freePort } from "../support/free-port.js";

const run = promisify(execFile);
const DEPLOY = join(ROOT, "deploy");

let helm = "";
beforeAll(async () => {
  helm = await ensureBinary("helm");
}, 900_000);

/** `helm template fenceline charts/fenceline -n fenceline` with these --set values. */
const template = (sets: string[] = [], release = "fenceline") => renderChart({ sets, release });

async function templateFails(sets: string[]): Promise<string> {
  try {
    await template(sets);
  } catch (err) {
    return (err as { stderr: string }).stderr;
  }
  throw new Error(`helm template ${sets.join(" ")} should have failed`);
}

const find = (objects: Manifest[], kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);
const key = (o: Manifest) => `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;

/**
 * What Helm adds and kustomize does not: its labels, and the checksums that roll the engine and
 * the agents when their configuration changes (kustomize does that with a hash in a generated
 * ConfigMap's name, which `kustomizeNamesOf` takes off).
 */
function withoutHelmBookkeeping(o: Manifest): Manifest {
  const copy = JSON.parse(JSON.stringify(o)) as Manifest;
  for (const l of ["helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance"]) delete copy.metadata.labels?.[l];
  const pod = (copy.spec?.template as { metadata?: { annotations?: Record<string, string> } } | undefined)?.metadata;
  if (pod?.annotations) {
    for (const k of Object.keys(pod.annotations)) if (k.startsWith("checksum/")) delete pod.annotations[k];
    if (Object.keys(pod.annotations).length === 0) delete pod.annotations;
  }
  // JSON documents in ConfigMaps (the policy, agent.json) compare as JSON, not as text.
  for (const [k, v] of Object.entries(copy.data ?? {})) {
    try {
      copy.data![k] = JSON.parse(v) as unknown as string;
    } catch {
      // not JSON: compared as text
    }
  }
  return copy;
}

/** kustomize's generated ConfigMaps carry a hash of their content in their name: take it off, and off every reference. */
function withoutGeneratedHashes(objects: Manifest[]): Manifest[] {
  let text = JSON.stringify(objects);
  for (const o of objects) {
    const hashed = o.kind === "ConfigMap" ? /^(.*)-[bcdfghkmt2-9]{10}$/.exec(o.metadata.name) : null;
    if (hashed) text = text.replaceAll(`"${o.metadata.name}"`, `"${hashed[1]}"`);
  }
  return JSON.parse(text) as Manifest[];
}

describe("charts/fenceline", () => {
  it("helm lint passes with the default values and common overrides", async () => {
    for (const sets of [[], ["nats.config.cluster.enabled=false"], ["nats.enabled=false", "nats.url=nats://nats.nats.svc:4222"], ["image.tag=0.2.0", "engine.replicas=3", "namespace.create=true"]]) {
      const { stdout } = await run(helm, ["lint", CHART, "--strict", "--namespace", "fenceline", ...sets.flatMap((s) => ["--set", s])]);
      expect(stdout, sets.join(" ")).toContain("1 chart(s) linted, 0 chart(s) failed");
    }
  }, 120_000);

  it("with the default values it renders exactly what deploy/ ships (kustomize), Helm's labels aside", async () => {
    const chart = await template(["namespace.create=true"]);
    const { stdout } = await run("kubectl", ["kustomize", DEPLOY], { maxBuffer: 16 * 1024 * 1024 });
    const kustomize = withoutGeneratedHashes((loadAllYaml(stdout) as Manifest[]).filter(Boolean));
    expect(chart.map(key).sort()).toEqual(kustomize.map(key).sort());
    for (const k of kustomize) {
      const c = chart.find((o) => key(o) === key(k))!;
      expect(withoutHelmBookkeeping(c), key(k)).toEqual(withoutHelmBookkeeping(k));
    }
    // Without namespace.create, Helm leaves the namespace to `helm install --create-namespace`.
    expect((await template()).some((o) => o.kind === "Namespace")).toBe(false);
  }, 60_000);

  describe("NATS", () => {
    let dir = "";
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), "fenceline-chart-"));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it("by default a JetStream cluster of three servers, one per node, routed by stable names, at most one down at a time; nats-server accepts its configuration", async () => {
      const objects = await template();
      expect(find(objects, "PodDisruptionBudget", "fenceline-nats")!.spec).toMatchObject({ maxUnavailable: 1 });
      const sts = find(objects, "StatefulSet", "fenceline-nats")!;
      expect(sts.spec!.replicas).toBe(3);
      expect(sts.spec!.serviceName).toBe("nats-headless");
      const headless = find(objects, "Service", "nats-headless")!;
      expect(headless.spec!.clusterIP).toBe("None");
      const conf = find(objects, "ConfigMap", "fenceline-nats")!.data!["nats.conf"]!;
      for (let i = 0; i < 3; i++) expect(conf).toContain(`nats://fenceline-nats-${i}.nats-headless.fenceline.svc:6222`);
      // The engine and the agents still reach it through the client Service.
      const engine = JSON.stringify(find(objects, "Deployment", "fenceline-engine"));
      expect(engine).toContain("--server=nats://nats.fenceline.svc:4222");
      // The real nats-server (the version the tests run) accepts the rendered configuration.
      const natsServer = await ensureBinary("nats-server");
      const file = join(dir, "nats.conf");
      writeFileSync(file, conf.replace("store_dir: /data", `store_dir: ${join(dir, "data")}`));
      const check = await run(natsServer, ["-c", file, "-t"], { env: { ...process.env, SERVER_NAME: "fenceline-nats-0" } }).catch((err: { stderr: string }) => {
        throw new Error(`nats-server rejects the cluster configuration:\n${err.stderr}`);
      });
      expect(`${check.stdout}${check.stderr}`).toMatch(/configuration file .* is valid/);
    }, 120_000);

    it("the rendered cluster configuration forms a real three-server JetStream cluster that holds Fenceline's streams with three replicas", async () => {
      const conf = find(await template(["nats.config.cluster.enabled=true"]), "ConfigMap", "fenceline-nats")!.data!["nats.conf"]!;
      // What Kubernetes provides, on loopback: each pod's name ($SERVER_NAME), its volume, and
      // DNS names for the routes (here distinct loopback ports); client and monitor ports are free ones.
      const servers: NatsServer[] = [];
      try {
        const routePorts = await Promise.all([0, 1, 2].map(() => freePort()));
        for (let i = 0; i < 3; i++) {
          let mine = conf
            .replace("$SERVER_NAME", `fenceline-nats-${i}`)
            .replace("store_dir: /data", `store_dir: ${join(dir, `cluster-${i}`)}`)
            .replace(/^\s*http_port: \d+\n/m, "")
            .replace(/port: 6222/, `port: ${routePorts[i]}`);
          for (let j = 0; j < 3; j++) mine = mine.replace(`nats://fenceline-nats-${j}.nats-headless.fenceline.svc:6222`, `nats://127.0.0.1:${routePorts[j]}`);
          const file = join(dir, `cluster-${i}.conf`);
          writeFileSync(file, mine);
          servers.push(await startNatsServer({ configFile: file, jetstream: false }));
        }
        const nc = await connectNats(servers[0]!.url, { name: "chart-test" });
        try {
          // JetStream needs its meta leader first: provisioning retries until the cluster is up.
          const until = Date.now() + 30_000;
          for (;;) {
            try {
              await provisionStreams(nc, { replicas: 3 });
              break;
            } catch (err) {
              if (Date.now() > until) throw err;
              await new Promise((r) => setTimeout(r, 500));
            }
          }
          const info = await (await jetstreamManager(nc)).streams.info(Streams.events);
          expect(info.config.num_replicas).toBe(3);
          expect(info.cluster?.name).toBe("fenceline");
          expect((info.cluster?.replicas ?? []).length).toBe(2);
        } finally {
          await nc.close();
        }
      } finally {
        await Promise.all(servers.map((s) => s.stop()));
      }
    }, 120_000);

    it("nats.config.cluster.enabled false: one server, no routes, no disruption budget; nats-server accepts its configuration", async () => {
      const objects = await template(["nats.config.cluster.enabled=false"]);
      expect(find(objects, "StatefulSet", "fenceline-nats")!.spec!.replicas).toBe(1);
      expect(find(objects, "Service", "nats-headless")).toBeUndefined();
      expect(find(objects, "PodDisruptionBudget", "fenceline-nats")).toBeUndefined();
      const conf = find(objects, "ConfigMap", "fenceline-nats")!.data!["nats.conf"]!;
      expect(conf).not.toContain("cluster {");
      const natsServer = await ensureBinary("nats-server");
      const file = join(dir, "single.conf");
      writeFileSync(file, conf.replace("store_dir: /data", `store_dir: ${join(dir, "single")}`));
      const check = await run(natsServer, ["-c", file, "-t"]);
      expect(`${check.stdout}${check.stderr}`).toMatch(/is valid/);
    });

    it("nats.enabled false: no NATS objects; the engine and every agent use nats.url", async () => {
      const objects = await template(["nats.enabled=false", "nats.url=nats://nats.nats.svc:4222"]);
      expect(objects.filter((o) => o.metadata.name.includes("nats"))).toEqual([]);
      expect(JSON.stringify(find(objects, "Deployment", "fenceline-engine"))).toContain("--server=nats://nats.nats.svc:4222");
      const agent = JSON.parse(find(objects, "ConfigMap", "fenceline-agent")!.data!["agent.json"]!) as { nats: { url: string }; node: string };
      expect(agent).toMatchObject({ node: "__NODE_NAME__", nats: { url: "nats://nats.nats.svc:4222" } });
      expect(await templateFails(["nats.enabled=false"])).toContain("set nats.url to your NATS");
    });

    it("JetStream cannot be turned off", async () => {
      expect(await templateFails(["nats.config.jetstream.enabled=false"])).toContain("nats.config.jetstream.enabled must be true");
    });
  });

  it("the agents' timing must equal the policy's: a chart that disagrees does not render", async () => {
    expect(await templateFails(["agent.config.timing.watchdogTimeoutMs=30s"])).toMatch(/agent.config.timing .* must equal policy.agent/);
    // Changed together, it renders, and the policy change rolls the engine.
    const before = find(await template(), "Deployment", "fenceline-engine")!;
    const after = find(await template(["agent.config.timing.watchdogTimeoutMs=30s", "policy.agent.watchdogTimeoutMs=30s"]), "Deployment", "fenceline-engine")!;
    const checksum = (d: Manifest) => (d.spec!.template as { metadata: { annotations: Record<string, string> } }).metadata.annotations["checksum/policy"];
    expect(checksum(after)).not.toBe(checksum(before));
  });

  it("values.schema.json refuses a misspelt or out-of-range value, naming it", async () => {
    expect(await templateFails(["engine.replica=3"])).toContain("additional properties 'replica' not allowed");
    expect(await templateFails(["nats.config.cluster.replicas=2"])).toContain("/nats/config/cluster/replicas");
    expect(await templateFails(["engine.replicas=0"])).toContain("/engine/replicas");
  });

  it("common overrides: image tag, replicas, metrics port, release name", async () => {
    const objects = await template(["image.tag=0.2.0", "engine.replicas=3", "engine.metricsPort=9100"], "fl");
    const engine = find(objects, "Deployment", "fl-fenceline-engine")!;
    expect(engine.spec!.replicas).toBe(3);
    const text = JSON.stringify(engine);
    expect(text).toContain("ghcr.io/fenceline/fenceline:0.2.0");
    expect(text).toContain("--metrics-port=9100");
    expect(text).toContain('"containerPort":9100');
    expect(JSON.stringify(find(objects, "DaemonSet", "fl-fenceline-agent"))).toContain("ghcr.io/fenceline/fenceline:0.2.0");
    expect(find(objects, "ClusterRoleBinding", "fl-fenceline-engine")).toBeDefined();
  });
});
