import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";
import { loadAllYaml } from "@fenceline/kubernetes";
import {
  applyObject,
  serviceAccountToken,
  startKubeControlPlane,
  writeKubeconfig,
  type KubeControlPlaneInfo,
  type KubeObject,
} from "@fenceline/kube-lab";

const DEPLOY = join(fileURLToPath(import.meta.url), "..", "..", "..", "deploy");
export const ENGINE_SERVICE_ACCOUNT = { namespace: "fenceline", name: "fenceline-engine" };
export const ENGINE_USER = `system:serviceaccount:${ENGINE_SERVICE_ACCOUNT.namespace}:${ENGINE_SERVICE_ACCOUNT.name}`;

export type KubeTestEnvironment = {
  kube: KubeControlPlaneInfo;
  /** A kubeconfig with a token of the engine's ServiceAccount from deploy/rbac.yaml. */
  engineKubeconfig: string;
};

declare module "vitest" {
  export interface ProvidedContext {
    kubeTest: KubeTestEnvironment;
  }
}

/**
 * One real control plane for every test under test/kubernetes/ (see vitest.config.ts), with
 * deploy/namespace.yaml and deploy/rbac.yaml applied as shipped, so Fenceline runs with the
 * engine ServiceAccount's token. Its requests go to the API server's audit log.
 */
export default async function setup(project: TestProject) {
  const cp = await startKubeControlPlane({ auditUsers: [ENGINE_USER] });
  try {
    for (const file of ["namespace.yaml", "rbac.yaml"]) {
      for (const object of loadAllYaml(readFileSync(join(DEPLOY, file), "utf8")) as KubeObject[]) {
        await applyObject(cp.admin, object, { fieldManager: "fenceline-tests" });
      }
    }
    const token = await serviceAccountToken(cp.admin, ENGINE_SERVICE_ACCOUNT.namespace, ENGINE_SERVICE_ACCOUNT.name, 6 * 3600);
    const { admin: _admin, stop: _stop, ...kube } = cp;
    project.provide("kubeTest", { kube, engineKubeconfig: writeKubeconfig(cp, "fenceline-engine", token) });
  } catch (err) {
    await cp.stop();
    throw err;
  }
  return () => cp.stop();
}
