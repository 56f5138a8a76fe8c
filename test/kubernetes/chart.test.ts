import { describe, expect, inject, it } from "vitest";
import { adminClient, applyObject, KubeApiError, objectPath, type KubeClient, type KubeObject } from "@fenceline/kube-lab";
import { POWER_FENCING_VALUES, renderChart, type ChartValues, type Manifest } from "../support/helm.js";

/**
 * The Helm chart's manifests against the real API server of the shared control plane
 * (global-setup.ts): every object goes through server-side apply as a dry run — decoded with
 * strict field validation, defaulted, validated and admitted exactly as an install would be,
 * without being stored (stored workloads would be scheduled onto the other tests' nodes) — for
 * the default values (a three-server NATS cluster), a single NATS server, an existing NATS and
 * power fencing with a credentials Secret.
 */
/** Server-side apply that refuses unknown or duplicate fields (`kubectl apply --validate=strict`), as a dry run. */
async function dryRunStrict(client: KubeClient, object: KubeObject): Promise<Manifest> {
  return client.apply<Manifest>(await objectPath(client, object), object, "fenceline-chart-test", {
    fieldValidation: "Strict",
    dryRun: "All",
  });
}

describe("charts/fenceline on a real API server", () => {
  const { kube } = inject("kubeTest");
  const admin = adminClient(kube);

  it("the check has teeth: a misspelt field is refused", async () => {
    await applyObject(admin, { apiVersion: "v1", kind: "Namespace", metadata: { name: "fl-chart-typo" } } as KubeObject, {
      fieldManager: "fenceline-chart-test",
    });
    const [engine] = (await renderChart({ release: "typo", namespace: "fl-chart-typo" })).filter(
      (o) => o.kind === "Deployment",
    ) as unknown as KubeObject[];
    const broken = JSON.parse(JSON.stringify(engine).replace('"serviceAccountName"', '"serviceAcountName"')) as KubeObject;
    const err = await dryRunStrict(admin, broken).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).message).toContain("serviceAcountName");
  });

  const cases: Array<{ name: string; release: string; namespace: string; values: ChartValues; kinds: string[] }> = [
    {
      name: "default values",
      release: "chart-default",
      namespace: "fl-chart-default",
      values: {},
      kinds: ["StatefulSet", "PodDisruptionBudget"],
    },
    {
      name: "a single NATS server",
      release: "chart-single",
      namespace: "fl-chart-single",
      values: { sets: ["nats.config.cluster.enabled=false"] },
      kinds: ["StatefulSet"],
    },
    {
      name: "an existing NATS",
      release: "chart-external",
      namespace: "fl-chart-external",
      values: { sets: ["nats.enabled=false", "nats.url=nats://nats.nats.svc:4222"] },
      kinds: [],
    },
    {
      name: "power fencing (a devices ConfigMap, a credentials Secret)",
      release: "chart-fencing",
      namespace: "fl-chart-fencing",
      values: POWER_FENCING_VALUES,
      kinds: ["StatefulSet", "Secret"],
    },
  ];

  for (const c of cases) {
    it(`${c.name}: the API server admits every object as rendered`, async () => {
      const values = { ...c.values, sets: ["namespace.create=true", ...(c.values.sets ?? [])] };
      const objects = (await renderChart({ release: c.release, namespace: c.namespace, ...values })) as unknown as KubeObject[];
      // The namespace is created (the rest goes there, and a dry run does not create it); the
      // rest is applied as a dry run.
      const namespaces = objects.filter((o) => o.kind === "Namespace");
      const rest = objects.filter((o) => o.kind !== "Namespace");
      expect(namespaces.map((n) => n.metadata.name)).toEqual([c.namespace]);
      for (const o of namespaces) await applyObject(admin, o, { fieldManager: "fenceline-chart-test" });
      const admitted: string[] = [];
      for (const o of rest) {
        const answer = await dryRunStrict(admin, o);
        expect(answer.metadata.name).toBe(o.metadata.name);
        expect(answer.metadata.labels?.["app.kubernetes.io/managed-by"]).toBe("Helm");
        admitted.push(answer.kind);
      }
      expect(admitted.length).toBe(rest.length);
      for (const k of ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "DaemonSet", ...c.kinds])
        expect(admitted).toContain(k);
      expect(admitted.includes("StatefulSet")).toBe(c.kinds.includes("StatefulSet"));
    });
  }
});
