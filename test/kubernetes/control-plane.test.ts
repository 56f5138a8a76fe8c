import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, inject, it } from "vitest";
import { adminClient, createKubeClient, KubeApiError, serviceAccountToken } from "@fenceline/kube-lab";
import { loadKubeConfig, VersionApi } from "@fenceline/kubernetes";

const run = promisify(execFile);

/** The shared control plane itself: what every other test here relies on. */
describe("the real control plane (test/kubernetes/global-setup.ts)", () => {
  const { kube, engineKubeconfig } = inject("kubeTest");
  const admin = adminClient(kube);

  it("serves Kubernetes 1.37.2 and started in time", async () => {
    const version = await admin.get<{ gitVersion: string }>("/version");
    expect(version.gitVersion).toBe("v1.37.2");
    expect(kube.version).toBe("1.37.2");
    expect(kube.startup.totalMs).toBeGreaterThan(0);
  });

  it("works with Debian's kubectl through the admin kubeconfig (a client outside the supported skew)", async () => {
    const { stdout, stderr } = await run("kubectl", ["--kubeconfig", kube.kubeconfig, "version", "-o", "json"]);
    const versions = JSON.parse(stdout) as { clientVersion: { minor: string }; serverVersion: { gitVersion: string } };
    expect(versions.serverVersion.gitVersion).toBe("v1.37.2");
    expect(parseInt(versions.clientVersion.minor, 10)).toBeLessThan(36);
    expect(stderr).toMatch(/exceeds the supported minor version skew/);
    const ns = await run("kubectl", ["--kubeconfig", kube.kubeconfig, "get", "namespaces", "-o", "name"]);
    expect(ns.stdout).toContain("namespace/fenceline");
  });

  it("checks ServiceAccount tokens for real: the engine's role lets it read nodes, not secrets", async () => {
    const kc = loadKubeConfig({ kubeconfig: engineKubeconfig });
    expect((await kc.makeApiClient(VersionApi).getCode()).gitVersion).toBe("v1.37.2");
    const token = kc.getCurrentUser()!.token!;
    const engine = createKubeClient({ server: kube.server, ca: kube.ca, token });
    await expect(engine.list("/api/v1/nodes")).resolves.toHaveProperty("items");
    const denied = await engine.list("/api/v1/secrets").catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(KubeApiError);
    expect((denied as KubeApiError).status).toBe(403);
    expect((denied as KubeApiError).message).toContain(
      'User "system:serviceaccount:fenceline:fenceline-engine" cannot list resource "secrets"',
    );
    // A ServiceAccount without any binding cannot even list nodes.
    const nobody = createKubeClient({
      server: kube.server,
      ca: kube.ca,
      token: await serviceAccountToken(admin, "fenceline", "fenceline-agent", 600),
    });
    expect(((await nobody.list("/api/v1/nodes").catch((e: unknown) => e)) as KubeApiError).status).toBe(403);
    await expect(createKubeClient({ server: kube.server, ca: kube.ca, token: "not-a-token" }).list("/api/v1/nodes")).rejects.toMatchObject({
      status: 401,
    });
  });
});
