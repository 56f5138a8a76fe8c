import { describe, expect, it } from "vitest";
import { ApiException } from "@kubernetes/client-node";
import { ErrorCode, isFencelineError } from "@fenceline/contracts";
import { createRetrier, loadKubeConfig, parseServerVersion, toClusterNode } from "../src/index.js";
import { step, type Call } from "../src/errors.js";

const PATCH: Call = { verb: "patch", resource: "nodes", group: "", name: "n1" };
const apiError = (code: number, message = "boom", headers: Record<string, string> = {}) =>
  new ApiException(code, "Unknown API Status Code!", JSON.stringify({ kind: "Status", message, code }), headers);

function fixture() {
  const sleeps: number[] = [];
  const retry = createRetrier({ baseMs: 100, maxMs: 1_000, attempts: 5, sleep: async (ms) => void sleeps.push(ms), random: () => 0 });
  return { retry, sleeps };
}

describe("retries", () => {
  it.each([409, 429, 500, 502, 503, 504])("retries %i with exponential backoff, then succeeds", async (code) => {
    const { retry, sleeps } = fixture();
    let calls = 0;
    const value = await retry(PATCH, async () => {
      if (++calls < 4) throw apiError(code);
      return "ok";
    });
    expect(value).toBe("ok");
    expect(sleeps).toEqual([100, 200, 400]);
  });

  it("retries a refused connection", async () => {
    const { retry } = fixture();
    let calls = 0;
    await retry(PATCH, async () => {
      if (++calls < 2) throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6443"), { code: "ECONNREFUSED" });
    });
    expect(calls).toBe(2);
  });

  it("honours Retry-After", async () => {
    const { retry, sleeps } = fixture();
    let calls = 0;
    await retry(PATCH, async () => {
      if (++calls < 2) throw apiError(429, "slow down", { "retry-after": "3" });
    });
    expect(sleeps).toEqual([3_000]);
  });

  it("does not retry a 403 and names the RBAC rule of the call that failed", async () => {
    const { retry, sleeps } = fixture();
    const err = await retry(PATCH, () =>
      step({ verb: "get", resource: "nodes", group: "", name: "n1" }, async () => {
        throw apiError(403, 'nodes "n1" is forbidden: User "system:serviceaccount:fenceline:x" cannot get resource "nodes"');
      }),
    ).catch((e: unknown) => e);
    expect(sleeps).toEqual([]);
    expect(isFencelineError(err, ErrorCode.Forbidden)).toBe(true);
    expect((err as Error).message).toBe(
      'Kubernetes refused to get nodes/n1 (403 Forbidden: nodes "n1" is forbidden: User "system:serviceaccount:fenceline:x" cannot get resource "nodes"); ' +
        'the service account needs the RBAC rule { apiGroups: [""], resources: ["nodes"], verbs: ["get"] } in its ClusterRole (see deploy/rbac.yaml)',
    );
  });

  it("gives up after the last attempt with the status and the server's message", async () => {
    const { retry } = fixture();
    const err = await retry({ verb: "delete", resource: "volumeattachments", group: "storage.k8s.io", name: "csi-1" }, async () => {
      throw apiError(500, "etcdserver: request timed out");
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      "delete storage.k8s.io/volumeattachments/csi-1 failed after 5 attempts (HTTP 500): etcdserver: request timed out",
    );
  });

  it("reports 401, 404 and 422 without retrying", async () => {
    const { retry, sleeps } = fixture();
    const fail = (code: number) => retry(PATCH, async () => Promise.reject(apiError(code, "nope"))).catch((e: unknown) => e as Error);
    expect((await fail(401)).message).toContain("401 Unauthorized: nope); check the kubeconfig user or the service account token");
    expect(isFencelineError(await fail(404), ErrorCode.NotFound)).toBe(true);
    expect((await fail(422)).message).toBe("patch nodes/n1 failed (HTTP 422): nope");
    expect(sleeps).toEqual([]);
  });
});

describe("helpers", () => {
  it("parses server versions", () => {
    expect(parseServerVersion({ major: "1", minor: "30" })).toBe("1.30");
    expect(parseServerVersion({ major: "1", minor: "27+", gitVersion: "v1.27.3-eks-1" })).toBe("1.27");
    expect(parseServerVersion({ major: "", minor: "", gitVersion: "v1.31.2+k3s1" })).toBe("1.31");
    expect(() => parseServerVersion({})).toThrow(/unrecognised/);
  });

  it("reads the parts of a Node the detectors use", () => {
    const node = toClusterNode({
      metadata: { name: "n1", resourceVersion: "42", labels: { a: "b" } },
      spec: { taints: [{ key: "k", effect: "NoSchedule" }], unschedulable: true },
      status: {
        conditions: [{ type: "Ready", status: "Unknown", lastTransitionTime: new Date(5_000), reason: "NodeStatusUnknown" }],
        nodeInfo: { bootID: "b1" } as never,
      },
    });
    expect(node).toEqual({
      name: "n1",
      resourceVersion: "42",
      labels: { a: "b" },
      conditions: [{ type: "Ready", status: "Unknown", lastTransitionTime: 5_000, reason: "NodeStatusUnknown" }],
      taints: [{ key: "k", effect: "NoSchedule" }],
      unschedulable: true,
      bootId: "b1",
    });
  });

  it("says clearly when a kubeconfig cannot be loaded", () => {
    expect(() => loadKubeConfig({ kubeconfig: "/nonexistent/kubeconfig" })).toThrow(/cannot load the kubeconfig \/nonexistent\/kubeconfig/);
    const saved = process.env.KUBERNETES_SERVICE_HOST;
    delete process.env.KUBERNETES_SERVICE_HOST;
    try {
      expect(() => loadKubeConfig({ inCluster: true })).toThrow(/not running in a Kubernetes pod/);
    } finally {
      if (saved !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved;
    }
  });
});
