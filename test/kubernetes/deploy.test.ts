import { execFile, execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, inject, it } from "vitest";
import { parseAgentConfig, renderAgentConfig } from "@fenceline/agent";
import { Policy } from "@fenceline/contracts";
import { loadAllYaml } from "@fenceline/kubernetes";
import { applyObject, type KubeObject } from "@fenceline/kube-lab";
import { DEPLOY_AGENT_CONFIG, renderAsDeployed } from "../support/deploy-agent.js";
import { kubeAdmin } from "./harness.js";

const run = promisify(execFile);
const DEPLOY = join(fileURLToPath(import.meta.url), "..", "..", "..", "deploy");

type Manifest = KubeObject & { apiVersion: string; kind: string };
const files = () => readdirSync(DEPLOY).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
const manifestsOf = (file: string) => loadAllYaml(readFileSync(join(DEPLOY, file), "utf8")) as Manifest[];
const manifests = (): Manifest[] => files().flatMap(manifestsOf);
/** What `kubectl apply -k deploy/` applies: the files plus the ConfigMaps kustomize generates. */
const rendered = (): Manifest[] => loadAllYaml(execFileSync("kubectl", ["kustomize", DEPLOY], { encoding: "utf8" })) as Manifest[];

/** deploy/ as shipped, against the real API server. */
describe("deploy/ manifests on the real API server", () => {
  it("every object is accepted by server-side apply (dry run: validation, defaulting, admission)", async () => {
    const admin = kubeAdmin();
    const accepted: string[] = [];
    for (const object of rendered()) {
      const applied = await applyObject(admin, object, { dryRun: true, fieldManager: "fenceline-deploy-test" });
      expect(applied.metadata.name).toBe(object.metadata.name);
      accepted.push(`${object.kind}/${object.metadata.name}`);
    }
    expect(accepted).toEqual(
      expect.arrayContaining(["Deployment/fenceline-engine", "DaemonSet/fenceline-agent", "ClusterRole/fenceline-engine", "Service/nats"]),
    );
    // The ConfigMaps kustomize generates (named with their content's hash).
    expect(accepted.filter((a) => /^ConfigMap\/fenceline-(agent|policy)-\w+$/.test(a))).toHaveLength(2);
  });

  it("kubectl apply -k deploy/ --server-side --dry-run=server succeeds, as the install instructions run it", async () => {
    const { stdout } = await run("kubectl", [
      "--kubeconfig",
      inject("kubeTest").kube.kubeconfig,
      "apply",
      "-k",
      DEPLOY,
      "--server-side",
      "--dry-run=server",
      "--field-manager=fenceline-deploy-test",
    ]);
    expect(stdout).toMatch(/deployment\.apps\/fenceline-engine serverside-applied \(server dry run\)/);
    expect(stdout).toMatch(/daemonset\.apps\/fenceline-agent serverside-applied \(server dry run\)/);
  });

  it("bind the engine's role to its service account; the agent and NATS get no API token", () => {
    const all = manifests();
    const binding = all.find((m) => m.kind === "ClusterRoleBinding") as unknown as {
      roleRef: { name: string };
      subjects: Array<{ name: string; namespace: string }>;
    };
    expect(binding.roleRef.name).toBe("fenceline-engine");
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: "fenceline-engine", namespace: "fenceline" }]);
    const engine = all.find((m) => m.kind === "Deployment") as unknown as {
      spec: { template: { spec: { serviceAccountName: string; containers: Array<{ args: string[] }> } } };
    };
    expect(engine.spec.template.spec.serviceAccountName).toBe("fenceline-engine");
    expect(engine.spec.template.spec.containers[0]!.args).toEqual(expect.arrayContaining(["up", "--in-cluster"]));
    const agent = all.find((m) => m.kind === "DaemonSet") as unknown as {
      spec: { template: { spec: { automountServiceAccountToken: boolean; tolerations: unknown[] } } };
    };
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
    const all = rendered();
    const configMap = all.find((m) => m.kind === "ConfigMap" && m.metadata.name.startsWith("fenceline-agent")) as unknown as {
      metadata: { name: string; namespace: string };
      data: Record<string, string>;
    };
    expect(configMap.metadata.namespace).toBe("fenceline");
    expect(configMap.data["agent.json"]).toBe(readFileSync(DEPLOY_AGENT_CONFIG, "utf8"));
    const policy = all.find((m) => m.kind === "ConfigMap" && m.metadata.name.startsWith("fenceline-policy")) as unknown as {
      metadata: { name: string };
      data: Record<string, string>;
    };
    expect(policy.data["policy.json"]).toBe(readFileSync(join(DEPLOY, "policy.json"), "utf8"));
    const engine = all.find((m) => m.kind === "Deployment") as unknown as {
      spec: { template: { spec: { volumes: Array<{ name: string; configMap?: { name: string } }> } } };
    };
    expect(engine.spec.template.spec.volumes.find((v) => v.name === "policy")?.configMap?.name).toBe(policy.metadata.name);
    const daemonSet = all.find((m) => m.kind === "DaemonSet") as unknown as {
      spec: { template: { spec: { volumes: Array<{ name: string; configMap?: { name: string } }> } } };
    };
    expect(daemonSet.spec.template.spec.volumes.find((v) => v.name === "config")?.configMap?.name).toBe(configMap.metadata.name);
  });

  it("ship one agent config for every node: no peers, no fleet size; the init container renders it for any node and the agent accepts it", () => {
    const template = readFileSync(DEPLOY_AGENT_CONFIG, "utf8");
    const raw = JSON.parse(template) as Record<string, unknown>;
    expect(raw.peers).toBeUndefined();
    expect(raw.fleetSize).toBeUndefined();
    for (const node of [
      { name: "worker-1", ip: "10.0.0.11" },
      { name: "gpu.rack-2.example", ip: "fd00::12" },
    ]) {
      const out = renderAsDeployed(node);
      expect(out).toBe(renderAgentConfig(template, node));
      const config = parseAgentConfig(JSON.parse(out));
      expect(config.node).toBe(node.name);
      expect(config.peerAdvertiseUrl).toBe(node.ip.includes(":") ? `http://[${node.ip}]:9797` : `http://${node.ip}:9797`);
      expect(config.peers).toEqual([]);
      expect(config.watchdog.fallbackRebootCommand).toBeNull();
    }
  });
});
