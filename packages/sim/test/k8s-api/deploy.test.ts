import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FENCING_TAINT, OUT_OF_SERVICE_TAINT, Policy } from "@fenceline/contracts";
import { createNodeWatcher, loadAllYaml } from "@fenceline/kubernetes";
import { parseAgentConfig, renderAgentConfig } from "@fenceline/agent";
import { DEPLOY_AGENT_CONFIG, renderAsDeployed } from "../../../../test/support/deploy-agent.js";
import { startApiFixture, type ApiFixture } from "./helpers.js";

const DEPLOY = join(fileURLToPath(import.meta.url), "..", "..", "..", "..", "..", "deploy");

type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [k: string]: unknown };
const manifests = (): Manifest[] =>
  readdirSync(DEPLOY)
    .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
    .flatMap((f) => loadAllYaml(readFileSync(join(DEPLOY, f), "utf8")) as Manifest[]);

/** Which RBAC permission each request needs: "group/resource:verb" or "url:verb". */
function permission(method: string, path: string): string {
  if (path === "/version") return "/version:get";
  const watch = /^\/watch\/(\w+)$/.exec(path);
  if (watch) return `${watch[1] === "volumeattachments" ? "storage.k8s.io" : ""}/${watch[1]}:watch`;
  const m = /\/(nodes|pods|volumeattachments)(\/[^/]+)?$/.exec(path)!;
  const group = m[1] === "volumeattachments" ? "storage.k8s.io" : "";
  const verb = method === "GET" ? (m[2] ? "get" : "list") : method.toLowerCase();
  return `${group}/${m[1]}:${verb}`;
}

describe("deploy/ manifests", () => {
  let f: ApiFixture;
  beforeEach(async () => {
    f = await startApiFixture();
  });
  afterEach(async () => {
    await f.stop();
  });

  it("grant the engine exactly the permissions the adapter and the node watch use (least privilege)", async () => {
    // Everything the engine's Kubernetes code does, including the re-read after a uid conflict.
    const watcher = createNodeWatcher({ kubeConfig: f.kubeConfig });
    await watcher.start(() => {});
    const node = f.cluster.pod("db-0")!.node;
    await f.adapter.addTaint(node, FENCING_TAINT);
    await f.adapter.serverVersion();
    await f.adapter.countWorkloads(node);
    let raced = false;
    f.server.onRequest = (method, path) => {
      if (method === "DELETE" && path.endsWith("/pods/db-0") && !raced) {
        raced = true;
        f.cluster.forceDeletePod("db-0");
        f.tick();
      }
    };
    f.cluster.crash(node);
    await f.adapter.deletePods(node);
    expect(await f.adapter.deleteVolumeAttachments(node)).toBe(1);
    await f.adapter.addTaint(node, OUT_OF_SERVICE_TAINT);
    await f.adapter.removeTaint(node, OUT_OF_SERVICE_TAINT);
    await f.adapter.removeTaint(node, FENCING_TAINT);
    await watcher.stop();
    const used = new Set(f.server.requests.filter((r) => r.status < 400 || r.status === 409).map((r) => permission(r.method, r.path)));

    const role = manifests().find((m) => m.kind === "ClusterRole" && m.metadata.name === "fenceline-engine") as unknown as {
      rules: Array<{ apiGroups?: string[]; resources?: string[]; nonResourceURLs?: string[]; verbs: string[] }>;
    };
    const granted = new Set<string>();
    for (const rule of role.rules) {
      for (const verb of rule.verbs) {
        for (const url of rule.nonResourceURLs ?? []) granted.add(`${url}:${verb}`);
        for (const group of rule.apiGroups ?? []) for (const resource of rule.resources ?? []) granted.add(`${group}/${resource}:${verb}`);
      }
    }
    expect([...used].sort()).toEqual([...granted].sort());
  });

  it("bind the engine's role to its service account; the agent and NATS get no API token", () => {
    const all = manifests();
    const binding = all.find((m) => m.kind === "ClusterRoleBinding") as unknown as { roleRef: { name: string }; subjects: Array<{ name: string; namespace: string }> };
    expect(binding.roleRef.name).toBe("fenceline-engine");
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: "fenceline-engine", namespace: "fenceline" }]);
    const engine = all.find((m) => m.kind === "Deployment") as unknown as { spec: { template: { spec: { serviceAccountName: string; containers: Array<{ args: string[] }> } } } };
    expect(engine.spec.template.spec.serviceAccountName).toBe("fenceline-engine");
    expect(engine.spec.template.spec.containers[0]!.args).toEqual(expect.arrayContaining(["up", "--in-cluster"]));
    const agent = all.find((m) => m.kind === "DaemonSet") as unknown as { spec: { template: { spec: { automountServiceAccountToken: boolean; tolerations: unknown[] } } } };
    expect(agent.spec.template.spec.automountServiceAccountToken).toBe(false);
    expect(agent.spec.template.spec.tolerations).toEqual([{ operator: "Exists" }]);
    for (const sa of all.filter((m) => m.kind === "ServiceAccount" && m.metadata.name !== "fenceline-engine")) {
      expect((sa as unknown as { automountServiceAccountToken: boolean }).automountServiceAccountToken).toBe(false);
    }
  });

  it("ship a valid policy whose agent timing equals the agent's", () => {
    const policy = Policy.parse(JSON.parse(readFileSync(join(DEPLOY, "policy.json"), "utf8")));
    const agent = JSON.parse(readFileSync(DEPLOY_AGENT_CONFIG, "utf8")) as { timing: unknown; heartbeatInterval: string };
    expect(Policy.parse({ agent: agent.timing }).agent).toEqual(policy.agent);
    expect(Policy.parse({ heartbeat: { intervalMs: agent.heartbeatInterval } }).heartbeat.intervalMs).toBe(policy.heartbeat.intervalMs);
  });

  it("kustomize generates the agent's ConfigMap from deploy/agent.json and the DaemonSet mounts that one", () => {
    const rendered = loadAllYaml(execFileSync("kubectl", ["kustomize", DEPLOY], { encoding: "utf8" })) as Manifest[];
    const configMap = rendered.find((m) => m.kind === "ConfigMap" && m.metadata.name.startsWith("fenceline-agent")) as unknown as { metadata: { name: string; namespace: string }; data: Record<string, string> };
    expect(configMap.metadata.namespace).toBe("fenceline");
    expect(configMap.data["agent.json"]).toBe(readFileSync(DEPLOY_AGENT_CONFIG, "utf8"));
    const policy = rendered.find((m) => m.kind === "ConfigMap" && m.metadata.name.startsWith("fenceline-policy")) as unknown as { metadata: { name: string }; data: Record<string, string> };
    expect(policy.data["policy.json"]).toBe(readFileSync(join(DEPLOY, "policy.json"), "utf8"));
    const engine = rendered.find((m) => m.kind === "Deployment") as unknown as { spec: { template: { spec: { volumes: Array<{ name: string; configMap?: { name: string } }> } } } };
    expect(engine.spec.template.spec.volumes.find((v) => v.name === "policy")?.configMap?.name).toBe(policy.metadata.name);
    const daemonSet = rendered.find((m) => m.kind === "DaemonSet") as unknown as { spec: { template: { spec: { volumes: Array<{ name: string; configMap?: { name: string } }> } } } };
    expect(daemonSet.spec.template.spec.volumes.find((v) => v.name === "config")?.configMap?.name).toBe(configMap.metadata.name);
  });

  it("ship one agent config for every node: no peers, no fleet size; the init container renders it for any node and the agent accepts it", () => {
    const template = readFileSync(DEPLOY_AGENT_CONFIG, "utf8");
    const raw = JSON.parse(template) as Record<string, unknown>;
    expect(raw.peers).toBeUndefined();
    expect(raw.fleetSize).toBeUndefined();
    for (const node of [{ name: "worker-1", ip: "10.0.0.11" }, { name: "gpu.rack-2.example", ip: "fd00::12" }]) {
      const rendered = renderAsDeployed(node);
      expect(rendered).toBe(renderAgentConfig(template, node));
      const config = parseAgentConfig(JSON.parse(rendered));
      expect(config.node).toBe(node.name);
      expect(config.peerAdvertiseUrl).toBe(node.ip.includes(":") ? `http://[${node.ip}]:9797` : `http://${node.ip}:9797`);
      expect(config.peers).toEqual([]);
      expect(config.watchdog.fallbackRebootCommand).toBeNull();
    }
  });
});
