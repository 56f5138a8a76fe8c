import { execFile } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, inject, it } from "vitest";
import { Policy } from "@fenceline/contracts";
import { loadAllYaml } from "@fenceline/kubernetes";
import { applyObject, type KubeObject } from "@fenceline/kube-lab";
import { kubeAdmin } from "./harness.js";

const run = promisify(execFile);
const DEPLOY = join(fileURLToPath(import.meta.url), "..", "..", "..", "deploy");

type Manifest = KubeObject & { apiVersion: string; kind: string };
const files = () => readdirSync(DEPLOY).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
const manifestsOf = (file: string) => loadAllYaml(readFileSync(join(DEPLOY, file), "utf8")) as Manifest[];
const manifests = (): Manifest[] => files().flatMap(manifestsOf);

/** deploy/ as shipped, against the real API server. */
describe("deploy/ manifests on the real API server", () => {
  it("every object is accepted by server-side apply (dry run: validation, defaulting, admission)", async () => {
    const admin = kubeAdmin();
    const accepted: string[] = [];
    for (const object of manifests()) {
      const applied = await applyObject(admin, object, { dryRun: true, fieldManager: "fenceline-deploy-test" });
      expect(applied.metadata.name).toBe(object.metadata.name);
      accepted.push(`${object.kind}/${object.metadata.name}`);
    }
    expect(accepted).toEqual(expect.arrayContaining(["Deployment/fenceline-engine", "DaemonSet/fenceline-agent", "ClusterRole/fenceline-engine", "Service/nats"]));
  });

  it("kubectl apply -k deploy/ --server-side --dry-run=server succeeds, as the install instructions run it", async () => {
    const { stdout } = await run("kubectl", ["--kubeconfig", inject("kubeTest").kube.kubeconfig, "apply", "-k", DEPLOY, "--server-side", "--dry-run=server", "--field-manager=fenceline-deploy-test"]);
    expect(stdout).toMatch(/deployment\.apps\/fenceline-engine serverside-applied \(server dry run\)/);
    expect(stdout).toMatch(/daemonset\.apps\/fenceline-agent serverside-applied \(server dry run\)/);
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
    const all = manifests();
    const data = (name: string) => (all.find((m) => m.kind === "ConfigMap" && m.metadata.name === name) as unknown as { data: Record<string, string> }).data;
    const policy = Policy.parse(JSON.parse(data("fenceline-policy")["policy.json"]!));
    const agent = JSON.parse(data("fenceline-agent")["agent.json"]!) as { timing: unknown };
    expect(Policy.parse({ agent: agent.timing }).agent).toEqual(policy.agent);
  });
});
