import { execFile } from "node:child_process";
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
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
import { Policy } from "@fenceline/contracts";
import { parseAgentConfig, renderAgentConfig } from "@fenceline/agent";
import { FenceDevicesConfig } from "@fenceline/actuators";
import { CHART, POWER_FENCING_VALUES, renderChart, valueFlags, type ChartValues, type Manifest } from "../support/helm.js";
import { freePort } from "../support/free-port.js";

const run = promisify(execFile);
const DEPLOY = join(ROOT, "deploy");

let helm = "";
beforeAll(async () => {
  helm = await ensureBinary("helm");
}, 900_000);

/** `helm template fenceline charts/fenceline -n fenceline` with these --set values (or --set and --set-json). */
const template = (values: string[] | ChartValues = [], release = "fenceline") =>
  renderChart({ ...(Array.isArray(values) ? { sets: values } : values), release });

async function templateFails(values: string[] | ChartValues): Promise<string> {
  try {
    await template(values);
  } catch (err) {
    return (err as { stderr: string }).stderr;
  }
  throw new Error(`helm template ${JSON.stringify(values)} should have failed`);
}

const deployFile = (name: string) => readFileSync(join(DEPLOY, name), "utf8");
const shippedPolicy = () => deployFile("policy.json");
const shippedAgentConfig = () => deployFile("agent.json");
const configFile = (objects: Manifest[], name: string, key: string) => find(objects, "ConfigMap", name)!.data![key]!;

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
    const cases: ChartValues[] = [
      {},
      { sets: ["nats.config.cluster.enabled=false"] },
      { sets: ["nats.enabled=false", "nats.url=nats://nats.nats.svc:4222"] },
      { sets: ["image.tag=0.2.0", "engine.replicas=3", "namespace.create=true", "policy.fleet.maxUnhealthy=2"] },
      POWER_FENCING_VALUES,
    ];
    for (const values of cases) {
      const { stdout } = await run(helm, ["lint", CHART, "--strict", "--namespace", "fenceline", ...valueFlags(values)]);
      expect(stdout, JSON.stringify(values)).toContain("1 chart(s) linted, 0 chart(s) failed");
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

  it("reads the policy, the agent's configuration, its init container and the engine's RBAC rules from deploy/ itself: files/deploy is a link, nothing is copied", async () => {
    const link = join(CHART, "files", "deploy");
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(join(CHART, "files", readlinkSync(link))).toBe(DEPLOY);
    // With the default values the ConfigMaps hold what deploy/ ships, byte for byte.
    const objects = await template();
    expect(configFile(objects, "fenceline-policy", "policy.json")).toBe(shippedPolicy());
    expect(configFile(objects, "fenceline-agent", "agent.json")).toBe(shippedAgentConfig());
    // `helm package` stores the linked content (not deploy/monitoring or the Dockerfile): the packaged chart renders the same.
    const dir = mkdtempSync(join(tmpdir(), "fenceline-package-"));
    try {
      await run(helm, ["package", CHART, "--destination", dir]);
      const { stdout: listing } = await run("tar", ["tzf", join(dir, "fenceline-0.1.0.tgz")]);
      expect(listing).toContain("fenceline/files/deploy/rbac.yaml");
      expect(listing).not.toContain("fenceline/files/deploy/monitoring");
      const { stdout } = await run(helm, ["template", "fenceline", join(dir, "fenceline-0.1.0.tgz"), "--namespace", "fenceline"], {
        maxBuffer: 16 * 1024 * 1024,
      });
      expect((loadAllYaml(stdout) as Manifest[]).filter(Boolean)).toEqual(objects);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("RBAC: the ServiceAccounts, the engine's ClusterRole and its binding are deploy/rbac.yaml's, whatever the release is called", async () => {
    const rbacKinds = new Set(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]);
    const deploy = (loadAllYaml(deployFile("rbac.yaml")) as Manifest[]).map(withoutHelmBookkeeping);
    const chart = (await template()).filter((o) => rbacKinds.has(o.kind)).map(withoutHelmBookkeeping);
    expect(chart.map(key).sort()).toEqual(deploy.map(key).sort());
    for (const d of deploy)
      expect(
        chart.find((c) => key(c) === key(d)),
        key(d),
      ).toEqual(d);
    // Another release name and namespace: other names, the same rules, and still no Role at all
    // (the fence credentials are mounted files, not Secrets read through the API).
    const other = await renderChart({ release: "fl", namespace: "infra", ...POWER_FENCING_VALUES });
    const role = (objects: Manifest[], name: string) => (find(objects, "ClusterRole", name) as unknown as { rules: unknown }).rules;
    expect(role(other, "fl-fenceline-engine")).toEqual(role(deploy, "fenceline-engine"));
    expect(other.filter((o) => o.kind === "Role" || o.kind === "RoleBinding")).toEqual([]);
    expect((find(other, "ClusterRoleBinding", "fl-fenceline-engine") as unknown as { subjects: unknown }).subjects).toEqual([
      { kind: "ServiceAccount", name: "fl-fenceline-engine", namespace: "infra" },
    ]);
  });

  describe("policy and agent configuration values", () => {
    it("policy fields given as values are merged over deploy/policy.json; false, 0 and lists replace; the engine accepts the result and restarts for it", async () => {
      const shipped = JSON.parse(shippedPolicy()) as Record<string, Record<string, unknown>>;
      const objects = await template({
        sets: ["policy.fleet.maxUnhealthy=2", "policy.fleet.maxControlPlane=0"],
        setJsons: ['policy.remediation=[{"strategy":"ResourceDeletion","timeoutMs":"30s"}]'],
      });
      const rendered = JSON.parse(configFile(objects, "fenceline-policy", "policy.json")) as Record<string, Record<string, unknown>>;
      expect(rendered).toEqual({
        ...shipped,
        fleet: { ...shipped.fleet, maxUnhealthy: 2, maxControlPlane: 0 },
        remediation: [{ strategy: "ResourceDeletion", timeoutMs: "30s" }],
      });
      expect(Policy.parse(rendered).fleet).toMatchObject({ maxUnhealthy: 2, maxControlPlane: 0 });
      const checksum = (o: Manifest[]) =>
        (find(o, "Deployment", "fenceline-engine")!.spec!.template as { metadata: { annotations: Record<string, string> } }).metadata
          .annotations["checksum/policy"];
      expect(checksum(objects)).not.toBe(checksum(await template()));
      // A switch turned off is turned off (Sprig's mergeOverwrite would keep true).
      const off = JSON.parse(
        configFile(
          await template({
            sets: ["policy.fencing.fenceAgent=true", "policy.fencing.watchdog=false", ...POWER_FENCING_VALUES.sets],
            setJsons: POWER_FENCING_VALUES.setJsons,
          }),
          "fenceline-policy",
          "policy.json",
        ),
      ) as { fencing: unknown };
      expect(Policy.parse(off).fencing).toMatchObject({ watchdog: false, fenceAgent: true });
    });

    it("agent.config values are merged over deploy/agent.json; NATS comes from the chart's NATS; the pod's paths follow the configuration", async () => {
      const shipped = JSON.parse(shippedAgentConfig()) as Record<string, unknown>;
      const objects = await template({ sets: ["agent.config.logLevel=debug", "agent.config.stateDir=/var/lib/fl"] }, "fl");
      const rendered = JSON.parse(configFile(objects, "fl-fenceline-agent", "agent.json")) as Record<string, unknown>;
      expect(rendered).toEqual({ ...shipped, logLevel: "debug", stateDir: "/var/lib/fl" });
      expect(JSON.stringify(find(objects, "DaemonSet", "fl-fenceline-agent"))).toContain('"path":"/var/lib/fl"');
      // What the init container writes on a node, the agent accepts.
      const onNode = parseAgentConfig(
        JSON.parse(renderAgentConfig(configFile(objects, "fl-fenceline-agent", "agent.json"), { name: "worker-1", ip: "10.0.0.11" })),
        {
          source: "chart",
        },
      );
      expect(onNode).toMatchObject({
        node: "worker-1",
        logLevel: "debug",
        nats: { url: "nats://nats.fenceline.svc:4222" },
      });
      const inOtherNamespace = await renderChart({ namespace: "infra" });
      expect(JSON.parse(configFile(inOtherNamespace, "fenceline-agent", "agent.json"))).toEqual({
        ...shipped,
        nats: { url: "nats://nats.infra.svc:4222" },
      });
    });

    it("the agents' timing must equal the policy's: a chart that disagrees does not render", async () => {
      expect(await templateFails(["agent.config.timing.watchdogTimeoutMs=30s"])).toMatch(
        /agent.config.timing .* must equal the policy's agent section/,
      );
      expect(await templateFails(["policy.agent.marginMs=1s"])).toMatch(/must equal the policy's agent section/);
      // Changed together, it renders, and the agents roll.
      const checksum = (o: Manifest[]) =>
        (find(o, "DaemonSet", "fenceline-agent")!.spec!.template as { metadata: { annotations: Record<string, string> } }).metadata
          .annotations["checksum/agent-config"];
      const after = await template(["agent.config.timing.watchdogTimeoutMs=30s", "policy.agent.watchdogTimeoutMs=30s"]);
      expect(checksum(after)).not.toBe(checksum(await template()));
    });
  });

  describe("power fencing", () => {
    it("off by default: no devices, no credentials, the engine as deploy/ runs it", async () => {
      const objects = await template();
      expect(objects.filter((o) => o.kind === "Secret" || o.metadata.name.includes("fence-"))).toEqual([]);
      expect(JSON.stringify(find(objects, "Deployment", "fenceline-engine"))).not.toContain("fence-devices");
    });

    it("devices and credentials from values: a devices ConfigMap the fence actuator accepts, a Secret, both mounted into the engine, which runs with --fence-devices", async () => {
      const objects = await template(POWER_FENCING_VALUES);
      const devices = FenceDevicesConfig.parse(JSON.parse(configFile(objects, "fenceline-fence-devices", "devices.json")));
      expect(devices.devices.ipmi!.password).toEqual({ file: "/etc/fenceline-fence-credentials/bmc-password" });
      const secret = find(objects, "Secret", "fenceline-fence-credentials")!;
      expect(Buffer.from(secret.data!["bmc-password"]!, "base64").toString()).toBe("s3cret");
      type Pod = {
        securityContext: { fsGroup?: number };
        containers: Array<{ args: string[]; volumeMounts: Array<{ name: string; mountPath: string }> }>;
        volumes: Array<Record<string, { name?: string; secretName?: string; defaultMode?: number }>>;
      };
      const pod = (find(objects, "Deployment", "fenceline-engine")!.spec!.template as { spec: Pod }).spec;
      expect(pod.containers[0]!.args).toContain("--fence-devices=/etc/fenceline-fence-devices/devices.json");
      expect(pod.containers[0]!.volumeMounts).toEqual(
        expect.arrayContaining([
          { name: "fence-devices", mountPath: "/etc/fenceline-fence-devices", readOnly: true },
          { name: "fence-credentials", mountPath: "/etc/fenceline-fence-credentials", readOnly: true },
        ]),
      );
      expect(pod.volumes).toEqual(
        expect.arrayContaining([
          { name: "fence-devices", configMap: { name: "fenceline-fence-devices" } },
          { name: "fence-credentials", secret: { secretName: "fenceline-fence-credentials", defaultMode: 0o440 } },
        ]),
      );
      // The engine runs as 1000: the credential files are its group's.
      expect(pod.securityContext.fsGroup).toBe(1000);
      // The policy powers nodes off first, then falls back to the watchdog.
      expect(Policy.parse(JSON.parse(configFile(objects, "fenceline-policy", "policy.json"))).fencing.levels.map((l) => l.methods)).toEqual(
        [["power"], ["watchdog"]],
      );
      // No credential is in the ConfigMaps or the engine's arguments.
      const visible = JSON.stringify(objects.filter((o) => o.kind !== "Secret"));
      expect(visible).not.toContain("s3cret");
      expect(visible).not.toContain(Buffer.from("s3cret").toString("base64"));
    });

    it("an existing Secret and an existing devices ConfigMap: the chart creates neither and mounts both", async () => {
      const objects = await template({
        sets: [
          "policy.fencing.fenceAgent=true",
          "fencing.existingConfigMap=site-fence-devices",
          "fencing.credentials.existingSecret=bmc-credentials",
        ],
      });
      expect(objects.filter((o) => o.kind === "Secret" || o.metadata.name.includes("fence-devices"))).toEqual([]);
      const engine = JSON.stringify(find(objects, "Deployment", "fenceline-engine"));
      expect(engine).toContain('"configMap":{"name":"site-fence-devices"}');
      expect(engine).toContain('"secretName":"bmc-credentials"');
    });

    it("refuses what could not work: a policy that powers nodes off without devices, credentials without devices, both sources at once", async () => {
      expect(await templateFails(["policy.fencing.fenceAgent=true"])).toContain("no fence devices are configured");
      expect(
        await templateFails({
          setJsons: ['policy.fencing={"watchdog":true,"fenceAgent":true,"levels":[{"methods":["ipmi"],"timeoutMs":"30s"},["watchdog"]]}'],
        }),
      ).toContain("no fence devices are configured");
      expect(await templateFails(["fencing.credentials.existingSecret=bmc"])).toContain("no fence devices are");
      expect(
        await templateFails({
          sets: [...POWER_FENCING_VALUES.sets, "fencing.credentials.existingSecret=bmc"],
          setJsons: POWER_FENCING_VALUES.setJsons,
        }),
      ).toContain("existingSecret or data, not both");
      expect(
        await templateFails({
          sets: [...POWER_FENCING_VALUES.sets, "fencing.existingConfigMap=x"],
          setJsons: POWER_FENCING_VALUES.setJsons,
        }),
      ).toContain("devices or existingConfigMap, not both");
    });
  });

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
      const check = await run(natsServer, ["-c", file, "-t"], { env: { ...process.env, SERVER_NAME: "fenceline-nats-0" } }).catch(
        (err: { stderr: string }) => {
          throw new Error(`nats-server rejects the cluster configuration:\n${err.stderr}`);
        },
      );
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
          for (let j = 0; j < 3; j++)
            mine = mine.replace(`nats://fenceline-nats-${j}.nats-headless.fenceline.svc:6222`, `nats://127.0.0.1:${routePorts[j]}`);
          const file = join(dir, `cluster-${i}.conf`);
          writeFileSync(file, mine);
          servers.push(await startNatsServer({ configFile: file, jetstream: false }));
        }
        const nc = await connectNats(servers[0]!.url, { name: "chart-test" });
        try {
          // JetStream needs its meta leader first: provisioning waits for the cluster to form.
          await provisionStreams(nc, { replicas: 3 });
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
      const agent = JSON.parse(find(objects, "ConfigMap", "fenceline-agent")!.data!["agent.json"]!) as {
        nats: { url: string };
        node: string;
      };
      expect(agent).toMatchObject({ node: "__NODE_NAME__", nats: { url: "nats://nats.nats.svc:4222" } });
      expect(await templateFails(["nats.enabled=false"])).toContain("set nats.url to your NATS");
    });

    it("JetStream cannot be turned off", async () => {
      expect(await templateFails(["nats.config.jetstream.enabled=false"])).toContain("nats.config.jetstream.enabled must be true");
    });
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
    // The agent's own image follows the tag.
    expect(JSON.stringify(find(objects, "DaemonSet", "fl-fenceline-agent"))).toContain("ghcr.io/fenceline/fenceline-agent:0.2.0");
    expect(find(objects, "ClusterRoleBinding", "fl-fenceline-engine")).toBeDefined();
  });
});
