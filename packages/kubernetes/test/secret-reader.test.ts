import { createServer, type Server } from "node:http";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSecretKeyReader } from "../src/secret-reader.js";

/** Answers GET on one Secret, 403 on another namespace, 404 otherwise; records the paths asked. */
let server: Server;
let url = "";
const asked: string[] = [];
beforeAll(async () => {
  server = createServer((req, res) => {
    asked.push(`${req.method} ${req.url}`);
    res.setHeader("content-type", "application/json");
    if (req.url === "/api/v1/namespaces/fenceline/secrets/bmc") {
      res.end(
        JSON.stringify({
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: "bmc", namespace: "fenceline" },
          data: { password: Buffer.from("s3cret\n").toString("base64"), user: Buffer.from("admin").toString("base64") },
        }),
      );
    } else if (req.url?.startsWith("/api/v1/namespaces/kube-system/")) {
      res.statusCode = 403;
      res.end(JSON.stringify({ kind: "Status", status: "Failure", message: 'secrets "bmc" is forbidden', reason: "Forbidden", code: 403 }));
    } else {
      res.statusCode = 404;
      res.end(JSON.stringify({ kind: "Status", status: "Failure", message: "not found", reason: "NotFound", code: 404 }));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

function reader() {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: url, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return createSecretKeyReader({ kubeConfig: kc, retry: { attempts: 1 } });
}

describe("Kubernetes Secret reader", () => {
  it("reads and decodes one key of a Secret", async () => {
    expect(await reader()({ namespace: "fenceline", name: "bmc", key: "password" })).toBe("s3cret\n");
    expect(asked).toContain("GET /api/v1/namespaces/fenceline/secrets/bmc");
  });

  it("names the missing key and the keys there are, never their values", async () => {
    await expect(reader()({ namespace: "fenceline", name: "bmc", key: "passwd" })).rejects.toThrow(
      "Secret fenceline/bmc has no key passwd (it has password, user)",
    );
  });

  it("names the RBAC rule when it may not read the Secret, and says when it does not exist", async () => {
    await expect(reader()({ namespace: "kube-system", name: "bmc", key: "password" })).rejects.toThrow(
      /Kubernetes refused to get secrets\/bmc in namespace kube-system \(403 Forbidden.*\{ apiGroups: \[""\], resources: \["secrets"\], verbs: \["get"\] \}/,
    );
    await expect(reader()({ namespace: "fenceline", name: "nope", key: "password" })).rejects.toThrow(
      "get secrets/nope in namespace fenceline: not found",
    );
  });
});
