import { describe, expect, inject, it } from "vitest";
import { adminClient, applyObject, KubeApiError, objectPath, type KubeClient, type KubeObject } from "@fenceline/kube-lab";
import { renderChart, type Manifest } from "../support/helm.js";

/**
 * The Helm chart's manifests against the real API server of the shared control plane
 * (global-setup.ts): every object is validated, defaulted and admitted, then stored and read
 * back — for the default values (a three-server NATS cluster), a single NATS server and an
 * existing NATS.
 */
/** Server-side apply that refuses unknown or duplicate fields (`kubectl apply --validate=strict`), as a dry run or for real. */
async function applyStrict(client: KubeClient, object: KubeObject, dryRun: boolean) {
  await client.apply(await objectPath(client, object), object, "fenceline-chart-test", { fieldValidation: "Strict", ...(dryRun ? { dryRun: "All" } : {}) });
}

describe("charts/fenceline on a real API server", () => {
  const { kube } = inject("kubeTest");
  const admin = adminClient(kube);

  it("the check has teeth: a misspelt field is refused", async () => {
    await applyObject(admin, { apiVersion: "v1", kind: "Namespace", metadata: { name: "fl-chart-typo" } } as KubeObject, { fieldManager: "fenceline-chart-test" });
    const [engine] = (await renderChart({ release: "typo", namespace: "fl-chart-typo" })).filter((o) => o.kind === "Deployment") as unknown as KubeObject[];
    const broken = JSON.parse(JSON.stringify(engine).replace('"serviceAccountName"', '"serviceAcountName"')) as KubeObject;
    const err = await applyStrict(admin, broken, true).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).message).toContain("serviceAcountName");
  });

  const cases: Array<{ name: string; release: string; namespace: string; sets: string[] }> = [
    { name: "default values", release: "chart-default", namespace: "fl-chart-default", sets: ["namespace.create=true"] },
    { name: "a single NATS server", release: "chart-single", namespace: "fl-chart-single", sets: ["namespace.create=true", "nats.config.cluster.enabled=false"] },
    { name: "an existing NATS", release: "chart-external", namespace: "fl-chart-external", sets: ["namespace.create=true", "nats.enabled=false", "nats.url=nats://nats.nats.svc:4222"] },
  ];

  for (const c of cases) {
    it(`${c.name}: the API server admits every object, and stores what was rendered`, async () => {
      const objects = (await renderChart({ release: c.release, namespace: c.namespace, sets: c.sets })) as unknown as KubeObject[];
      // The namespace first (it is where the rest goes, and a dry run does not create it), then
      // everything: admitted without being stored (a dry run), then stored.
      const namespaces = objects.filter((o) => o.kind === "Namespace");
      const rest = objects.filter((o) => o.kind !== "Namespace");
      expect(namespaces.map((n) => n.metadata.name)).toEqual([c.namespace]);
      for (const o of namespaces) await applyObject(admin, o, { fieldManager: "fenceline-chart-test" });
      for (const o of rest) await applyStrict(admin, o, true);
      for (const o of rest) await applyStrict(admin, o, false);
      const ordered = [...namespaces, ...rest];
      expect(ordered.length).toBeGreaterThan(8);
      for (const o of ordered) {
        const stored = await admin.get<Manifest>(await objectPath(admin, o));
        expect(stored.metadata.name).toBe(o.metadata.name);
        expect(stored.metadata.labels?.["app.kubernetes.io/managed-by"]).toBe("Helm");
      }
      const kinds = new Set(ordered.map((o) => o.kind));
      for (const k of ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "DaemonSet"]) expect(kinds).toContain(k);
      expect(kinds.has("StatefulSet")).toBe(!c.sets.includes("nats.enabled=false"));
    });
  }
});
