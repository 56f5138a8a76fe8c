import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { get as httpGet } from "node:http";
import { get as httpsGet } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary } from "@fenceline/toolchain";
import { createKubeClient, isNotFound, type KubeClient } from "./kube-client.js";
import { freePort, lostPortRace, startProcess, startReaper, type LabProcess } from "./processes.js";

/** The controllers Fenceline interacts with, and the ones they need to work at all. */
export const CONTROLLERS = [
  // Ready=Unknown and the unreachable/not-ready taints after --node-monitor-grace-period; zone disruption.
  "node-lifecycle-controller",
  // Evicts pods that do not tolerate a NoExecute taint (the out-of-service taint among them).
  "taint-eviction-controller",
  // Force-deletes terminating pods of a NotReady node with the out-of-service taint; orphaned pods.
  "pod-garbage-collector-controller",
  "statefulset-controller",
  "deployment-controller",
  "replicaset-controller",
  "daemonset-controller",
  // VolumeAttachments for CSI volumes; detach without the 6-minute wait on out-of-service nodes.
  "persistentvolume-attach-detach-controller",
  "persistentvolume-binder-controller",
  "persistentvolume-protection-controller",
  "persistentvolumeclaim-protection-controller",
  // The default ServiceAccount of every namespace (pods are refused without it), legacy tokens, kube-root-ca.crt.
  "serviceaccount-controller",
  "serviceaccount-token-controller",
  "root-ca-certificate-publisher-controller",
  // Owner references (a deleted StatefulSet's pods) and namespace deletion between tests.
  "garbage-collector-controller",
  "namespace-controller",
] as const;

export type KubeControlPlaneOptions = {
  /** Where the temporary directory goes (default: the OS temp dir). */
  parentDir?: string;
  /** Extra kube-controller-manager flags (e.g. `--node-monitor-grace-period=20s`); defaults otherwise. */
  controllerManagerFlags?: string[];
  apiServerFlags?: string[];
  /** Requests by these users are written to the audit log (level Metadata); nobody else's. */
  auditUsers?: string[];
  /** How long each component may take to become ready (default 120 s: cold caches on a busy machine). */
  readyTimeoutMs?: number;
  /** Progress lines (default: stderr, prefixed `fenceline kube-lab:`). */
  progress?: (line: string) => void;
};

/**
 * What a test (or another process) needs to use a running control plane: plain data, so a
 * vitest globalSetup can `provide` it to the test workers.
 */
export type KubeControlPlaneInfo = {
  /** "1.37.2" */
  version: string;
  server: string;
  /** The CA of the API server's certificate (PEM), and the file it is in. */
  ca: string;
  caFile: string;
  /** A token in system:masters. */
  adminToken: string;
  /** An admin kubeconfig (kubectl --kubeconfig FILE works). */
  kubeconfig: string;
  dir: string;
  logs: { etcd: string; apiserver: string; controllerManager: string; scheduler: string; audit: string };
  /** The kube-controller-manager flags it runs with (defaults unless overridden). */
  controllerManagerFlags: string[];
  /** How long each start-up step took, in ms. */
  startup: { etcdMs: number; apiserverMs: number; controllersMs: number; totalMs: number };
};

export type KubeControlPlane = KubeControlPlaneInfo & {
  /** A client with the admin token. */
  admin: KubeClient;
  /** Stops every component (scheduler, controller-manager, API server, etcd) and removes the directory. */
  stop(): Promise<void>;
};

const log = (line: string) => process.stderr.write(`fenceline kube-lab: ${line}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** GETs a URL (https without verification: the components made their certificates at start). */
function probe(url: string, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const get = url.startsWith("https:") ? httpsGet : httpGet;
    const req = get(
      url,
      { rejectUnauthorized: false, headers: token ? { Authorization: `Bearer ${token}` } : {}, timeout: 5_000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", () => resolve({ status: 0, body }));
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve({ status: 0, body: "" }));
  });
}

async function waitReady(what: string, procs: LabProcess[], check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    for (const p of procs) {
      if (!p.running()) throw new Error(`${p.name} ${await p.exited} before ${what} was ready; log ${p.logFile}:\n${p.tail(25)}`);
    }
    if (await check()) return;
    if (Date.now() > until) {
      throw new Error(
        `${what} not ready after ${seconds(timeoutMs)}; logs: ${procs.map((p) => `${p.logFile}:\n${p.tail(15)}`).join("\n")}`,
      );
    }
    await sleep(100);
  }
}

/** A kubeconfig for `server` with one user. */
export function kubeconfigYaml(options: { server: string; caFile: string; token: string; user?: string; cluster?: string }): string {
  const cluster = options.cluster ?? "kube-lab";
  const user = options.user ?? "admin";
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    `- name: ${cluster}`,
    `  cluster: { server: "${options.server}", certificate-authority: "${options.caFile}" }`,
    "users:",
    `- name: ${user}`,
    `  user: { token: "${options.token}" }`,
    "contexts:",
    `- name: ${user}@${cluster}`,
    `  context: { cluster: ${cluster}, user: ${user} }`,
    `current-context: ${user}@${cluster}`,
    "",
  ].join("\n");
}

function auditPolicy(users: string[]): string {
  const rules = users.length > 0 ? [`  - level: Metadata\n    users: [${users.map((u) => JSON.stringify(u)).join(", ")}]`] : [];
  return ["apiVersion: audit.k8s.io/v1", "kind: Policy", 'omitStages: ["RequestReceived"]', "rules:", ...rules, "  - level: None", ""].join(
    "\n",
  );
}

/**
 * Starts a real Kubernetes control plane on free loopback ports in a temporary directory:
 * etcd (no fsync), kube-apiserver (token and ServiceAccount authentication, the Node and RBAC
 * authorizers, NodeRestriction), kube-controller-manager (the controllers in CONTROLLERS,
 * each with its own ServiceAccount, no leader election, timings at their defaults unless
 * overridden) and kube-scheduler. Resolves once each answers its readiness endpoint, printing
 * how long that took. A reaper process kills everything if this process dies without `stop()`.
 */
export async function startKubeControlPlane(options: KubeControlPlaneOptions = {}): Promise<KubeControlPlane> {
  const progress = options.progress ?? log;
  const timeoutMs = options.readyTimeoutMs ?? 120_000;
  const started = Date.now();
  const [etcdBin, apiserverBin, kcmBin, schedulerBin] = await Promise.all([
    ensureBinary("etcd"),
    ensureBinary("kube-apiserver"),
    ensureBinary("kube-controller-manager"),
    ensureBinary("kube-scheduler"),
  ]);
  const version = /kubernetes-v(\d+\.\d+\.\d+)/.exec(apiserverBin)?.[1] ?? "unknown";

  const dir = mkdtempSync(join(options.parentDir ?? tmpdir(), "fenceline-kube-"));
  const reaper = startReaper(join(dir, "pids.json"), dir);
  const procs: LabProcess[] = [];
  const spawnTracked = (name: string, binary: string, args: string[], logFile: string) => {
    const p = startProcess(name, binary, args, logFile);
    procs.push(p);
    reaper.watch(p.pid, binary);
    return p;
  };
  const stopAll = async () => {
    for (const p of [...procs].reverse()) await p.stop();
    procs.length = 0;
  };

  try {
    // Credentials: the ServiceAccount token signing key, a static admin token, the audit policy.
    const { privateKey, publicKey } = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs1", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    writeFileSync(join(dir, "sa.key"), privateKey, { mode: 0o600 });
    writeFileSync(join(dir, "sa.pub"), publicKey);
    const adminToken = randomBytes(24).toString("hex");
    writeFileSync(join(dir, "tokens.csv"), `${adminToken},kube-lab-admin,kube-lab-admin,"system:masters"\n`, { mode: 0o600 });
    writeFileSync(join(dir, "audit-policy.yaml"), auditPolicy(options.auditUsers ?? []));
    const logs = {
      etcd: join(dir, "etcd.log"),
      apiserver: join(dir, "kube-apiserver.log"),
      controllerManager: join(dir, "kube-controller-manager.log"),
      scheduler: join(dir, "kube-scheduler.log"),
      audit: join(dir, "audit.log"),
    };

    // etcd
    let etcdPort = 0;
    for (let attempt = 1; ; attempt++) {
      etcdPort = await freePort();
      const peerPort = await freePort();
      const client = `http://127.0.0.1:${etcdPort}`;
      const peer = `http://127.0.0.1:${peerPort}`;
      const etcd = spawnTracked(
        "etcd",
        etcdBin,
        [
          "--name=lab",
          `--data-dir=${join(dir, "etcd")}`,
          `--listen-client-urls=${client}`,
          `--advertise-client-urls=${client}`,
          `--listen-peer-urls=${peer}`,
          `--initial-advertise-peer-urls=${peer}`,
          `--initial-cluster=lab=${peer}`,
          "--unsafe-no-fsync",
          "--log-level=warn",
        ],
        logs.etcd,
      );
      try {
        await waitReady("etcd", [etcd], async () => (await probe(`${client}/health`)).body.includes('"health":"true"'), timeoutMs);
        break;
      } catch (err) {
        if (attempt < 3 && !etcd.running() && lostPortRace(logs.etcd)) {
          procs.pop();
          rmSync(join(dir, "etcd"), { recursive: true, force: true });
          continue;
        }
        throw err;
      }
    }
    const etcdMs = Date.now() - started;

    // kube-apiserver
    let apiPort = 0;
    const certDir = join(dir, "apiserver-certs");
    for (let attempt = 1; ; attempt++) {
      apiPort = await freePort();
      const apiserver = spawnTracked(
        "kube-apiserver",
        apiserverBin,
        [
          `--etcd-servers=http://127.0.0.1:${etcdPort}`,
          "--bind-address=127.0.0.1",
          "--advertise-address=127.0.0.1",
          // 1.37 refuses a loopback advertise address for the endpoint reconciler; nothing here needs the kubernetes Service endpoints.
          "--endpoint-reconciler-type=none",
          `--secure-port=${apiPort}`,
          `--cert-dir=${certDir}`,
          `--token-auth-file=${join(dir, "tokens.csv")}`,
          "--authorization-mode=Node,RBAC",
          "--enable-admission-plugins=NodeRestriction",
          // The agent DaemonSet in deploy/ is privileged (it opens the watchdog device).
          "--allow-privileged=true",
          "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
          `--service-account-key-file=${join(dir, "sa.pub")}`,
          `--service-account-signing-key-file=${join(dir, "sa.key")}`,
          "--service-cluster-ip-range=10.96.0.0/16",
          `--audit-policy-file=${join(dir, "audit-policy.yaml")}`,
          `--audit-log-path=${logs.audit}`,
          "--audit-log-format=json",
          "--profiling=false",
          ...(options.apiServerFlags ?? []),
        ],
        logs.apiserver,
      );
      try {
        await waitReady(
          "kube-apiserver",
          [apiserver],
          async () => (await probe(`https://127.0.0.1:${apiPort}/readyz`, adminToken)).body === "ok",
          timeoutMs,
        );
        break;
      } catch (err) {
        if (attempt < 3 && !apiserver.running() && lostPortRace(logs.apiserver)) {
          procs.pop();
          continue;
        }
        throw err;
      }
    }
    const apiserverMs = Date.now() - started - etcdMs;
    const server = `https://127.0.0.1:${apiPort}`;
    // The API server made a self-signed CA and a serving certificate (127.0.0.1) at start: the CA is the second certificate in the file.
    const caFile = join(dir, "ca.crt");
    const certs =
      readFileSync(join(certDir, "apiserver.crt"), "utf8").match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
    const ca = certs.length > 1 ? certs.slice(1).join("") : certs.join("");
    writeFileSync(caFile, ca);
    const kubeconfig = join(dir, "admin.kubeconfig");
    writeFileSync(kubeconfig, kubeconfigYaml({ server, caFile, token: adminToken }), { mode: 0o600 });

    // kube-controller-manager and kube-scheduler
    const controllerManagerFlags = [
      `--controllers=${CONTROLLERS.join(",")}`,
      "--leader-elect=false",
      // Each controller acts with its own ServiceAccount, so its RBAC is the bootstrap policy's, as in a real cluster.
      "--use-service-account-credentials=true",
      ...(options.controllerManagerFlags ?? []),
    ];
    const started2 = Date.now();
    for (let attempt = 1; ; attempt++) {
      const kcmPort = await freePort();
      const schedulerPort = await freePort();
      const kcm = spawnTracked(
        "kube-controller-manager",
        kcmBin,
        [
          `--kubeconfig=${kubeconfig}`,
          "--bind-address=127.0.0.1",
          `--secure-port=${kcmPort}`,
          `--cert-dir=${join(dir, "kcm-certs")}`,
          "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
          `--service-account-private-key-file=${join(dir, "sa.key")}`,
          `--root-ca-file=${caFile}`,
          ...controllerManagerFlags,
        ],
        logs.controllerManager,
      );
      const scheduler = spawnTracked(
        "kube-scheduler",
        schedulerBin,
        [
          `--kubeconfig=${kubeconfig}`,
          "--bind-address=127.0.0.1",
          `--secure-port=${schedulerPort}`,
          "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
          "--leader-elect=false",
        ],
        logs.scheduler,
      );
      try {
        await waitReady(
          "kube-controller-manager and kube-scheduler",
          [kcm, scheduler],
          async () => {
            const [a, b] = await Promise.all([
              probe(`https://127.0.0.1:${kcmPort}/healthz`),
              probe(`https://127.0.0.1:${schedulerPort}/readyz`),
            ]);
            return a.body === "ok" && b.body === "ok";
          },
          timeoutMs,
        );
        break;
      } catch (err) {
        const lost = [kcm, scheduler].some((p) => !p.running() && lostPortRace(p.logFile));
        if (attempt < 3 && lost) {
          await kcm.stop();
          await scheduler.stop();
          procs.splice(procs.indexOf(kcm), 2);
          continue;
        }
        throw err;
      }
    }
    const admin = createKubeClient({ server, ca, token: adminToken });
    // The serviceaccount controller is running once the default namespace has its ServiceAccount.
    await waitReady(
      "the ServiceAccount controller",
      procs,
      async () => {
        try {
          await admin.get("/api/v1/namespaces/default/serviceaccounts/default");
          return true;
        } catch (err) {
          if (isNotFound(err)) return false;
          throw err;
        }
      },
      timeoutMs,
    );
    const controllersMs = Date.now() - started2;
    const totalMs = Date.now() - started;
    progress(
      `Kubernetes ${version} control plane ready in ${seconds(totalMs)} (etcd ${seconds(etcdMs)}, kube-apiserver ${seconds(apiserverMs)}, controller-manager and scheduler ${seconds(controllersMs)}) at ${server}; kubeconfig ${kubeconfig}`,
    );

    let stopped = false;
    return {
      version,
      server,
      ca,
      caFile,
      adminToken,
      kubeconfig,
      dir,
      logs,
      controllerManagerFlags,
      startup: { etcdMs, apiserverMs, controllersMs, totalMs },
      admin,
      async stop() {
        if (stopped) return;
        stopped = true;
        admin.close();
        await stopAll();
        reaper.dismiss();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stopAll();
    reaper.dismiss();
    if (!process.env.FENCELINE_KEEP_KUBE_LAB) rmSync(dir, { recursive: true, force: true });
    throw new Error(`the Kubernetes control plane did not start (${(err as Error).message})`, { cause: err });
  }
}

/** A client for a control plane started elsewhere (a vitest globalSetup, another process). */
export function adminClient(info: Pick<KubeControlPlaneInfo, "server" | "ca" | "adminToken">): KubeClient {
  return createKubeClient({ server: info.server, ca: info.ca, token: info.adminToken });
}

/** Writes a kubeconfig for `token` next to the control plane's files; returns its path. */
export function writeKubeconfig(
  info: Pick<KubeControlPlaneInfo, "server" | "caFile" | "dir">,
  name: string,
  token: string,
  directory = info.dir,
): string {
  if (!existsSync(directory)) mkdirSync(directory, { recursive: true });
  const path = join(directory, `${name}.kubeconfig`);
  writeFileSync(path, kubeconfigYaml({ server: info.server, caFile: info.caFile, token, user: name }), { mode: 0o600 });
  return path;
}

/** A token for a ServiceAccount through the TokenRequest API (what the kubelet mounts into a pod). */
export async function serviceAccountToken(admin: KubeClient, namespace: string, name: string, expirationSeconds = 3600): Promise<string> {
  const review = await admin.create<{ status: { token: string } }>(`/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
    apiVersion: "authentication.k8s.io/v1",
    kind: "TokenRequest",
    spec: { expirationSeconds },
  });
  return review.status.token;
}
