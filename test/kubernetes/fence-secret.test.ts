import { describe, expect, inject, it } from "vitest";
import { createSecretReader, FenceErrorCode, isFenceAgentError } from "@fenceline/actuators";
import { adminClient, applyObject, serviceAccountToken, writeKubeconfig } from "@fenceline/kube-lab";
import { createSecretKeyReader, loadKubeConfig } from "@fenceline/kubernetes";

/**
 * A fence device password given as a Kubernetes Secret, read through the API from the real API
 * server by a ServiceAccount of its own (so that the engine's, whose requests other tests audit,
 * stays as shipped): refused with the rule to grant until a Role grants `get` on that one Secret,
 * then read and decoded.
 */
describe("fence device passwords from a Kubernetes Secret (real API server, RBAC)", () => {
  const { kube } = inject("kubeTest");
  const admin = adminClient(kube);
  const ref = { namespace: "fenceline", name: "bmc-credentials", key: "password" };
  const account = { namespace: "fenceline", name: "fence-credentials-reader" };

  it("is refused without a grant, naming the RBAC rule; readable once a Role grants get on that Secret", async () => {
    await applyObject(
      admin,
      { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: account.name, namespace: account.namespace } } as never,
      { fieldManager: "fence-secret-test" },
    );
    const kubeconfig = writeKubeconfig(kube, account.name, await serviceAccountToken(admin, account.namespace, account.name, 600));
    const read = createSecretReader({
      kubernetes: createSecretKeyReader({ kubeConfig: loadKubeConfig({ kubeconfig }), retry: { attempts: 1 } }),
    });
    await applyObject(
      admin,
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: ref.name, namespace: ref.namespace },
        stringData: { password: "s3cret-from-k8s\n", user: "fenceline" },
      } as never,
      { fieldManager: "fence-secret-test" },
    );

    const refused = await read({ secret: ref }).catch((e: unknown) => e);
    expect(isFenceAgentError(refused, FenceErrorCode.InvalidConfig)).toBe(true);
    expect((refused as Error).message).toContain(
      "Secret fenceline/bmc-credentials key password: Kubernetes refused to get secrets/bmc-credentials in namespace fenceline (403 Forbidden",
    );
    expect((refused as Error).message).toContain('{ apiGroups: [""], resources: ["secrets"], verbs: ["get"] }');
    expect((refused as Error).message).not.toContain("s3cret");

    await applyObject(
      admin,
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "Role",
        metadata: { name: "fenceline-fence-credentials", namespace: ref.namespace },
        rules: [{ apiGroups: [""], resources: ["secrets"], resourceNames: [ref.name], verbs: ["get"] }],
      } as never,
      { fieldManager: "fence-secret-test" },
    );
    await applyObject(
      admin,
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name: "fenceline-fence-credentials", namespace: ref.namespace },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "fenceline-fence-credentials" },
        subjects: [{ kind: "ServiceAccount", name: account.name, namespace: account.namespace }],
      } as never,
      { fieldManager: "fence-secret-test" },
    );

    // RBAC changes reach the authorizer's cache within a moment.
    let password: unknown;
    for (let i = 0; i < 50; i++) {
      password = await read({ secret: ref }).catch((e: unknown) => e);
      if (typeof password === "string") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(password).toBe("s3cret-from-k8s");
    // Only that Secret: another one in the namespace is still refused.
    await expect(read({ secret: { ...ref, name: "something-else" } })).rejects.toThrow(/403 Forbidden/);
  });
});
