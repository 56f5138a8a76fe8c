import http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { createHttpPeerTransport, PEER_CHECK_PATH, type HttpPeerTransport } from "../src/http-peers.js";
import { silentLog } from "./helpers/silent-log.js";

const open: HttpPeerTransport[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

async function peerPair(peerUrlFor?: (port: number) => string) {
  const server = createHttpPeerTransport({ node: "b", listen: { host: "127.0.0.1", port: 0 }, log: silentLog });
  open.push(server);
  const { port } = await server.listen();
  const client = createHttpPeerTransport({ node: "a", listen: { host: "127.0.0.1", port: 0 }, log: silentLog });
  open.push(client);
  const b = { node: "b", url: peerUrlFor?.(port) ?? `http://127.0.0.1:${port}/` };
  return { server, client, port, b };
}

function post(port: number, path: string, body: string, method = "POST"): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, method, headers: { "content-type": "application/json" } }, (res) => {
      let text = "";
      res.on("data", (chunk) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("HTTP peers", () => {
  it("round trip on loopback", async () => {
    const { server, client, b } = await peerPair();
    const questions: unknown[] = [];
    server.serve(async (question) => {
      questions.push(question);
      return { node: "b", controlPlane: "lost", verdict: "unknown" };
    });
    expect(await client.ask(b, { from: "a", about: "a" }, 1_000)).toEqual({ node: "b", controlPlane: "lost", verdict: "unknown" });
    expect(questions).toEqual([{ from: "a", about: "a" }]);
  });

  it("no answer within the timeout → undefined, quickly", async () => {
    const { server, client, b } = await peerPair();
    server.serve(() => new Promise((resolve) => setTimeout(() => resolve({ node: "b", controlPlane: "reachable" }), 2_000)));
    const started = Date.now();
    expect(await client.ask(b, { from: "a", about: "a" }, 150)).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("a peer that is down, unknown or not ready gives no answer", async () => {
    const { client, port, b } = await peerPair();
    expect(await client.ask(b, { from: "a", about: "a" }, 500)).toBeUndefined(); // 503: no handler yet
    expect(await client.ask({ node: "nobody" }, { from: "a", about: "a" }, 500)).toBeUndefined();
    await open[0]!.close();
    expect(await client.ask(b, { from: "a", about: "a" }, 500)).toBeUndefined();
    expect(port).toBeGreaterThan(0);
  });

  it("ignores an answer that is invalid", async () => {
    const { server, client, b } = await peerPair();
    server.serve(async () => ({ node: "b", controlPlane: "maybe" }) as never);
    expect(await client.ask(b, { from: "a", about: "a" }, 500)).toBeUndefined();
  });

  it("validates requests: path, method, JSON, schema, size", async () => {
    const { server, port } = await peerPair();
    server.serve(async () => ({ node: "b", controlPlane: "reachable" }));
    expect((await post(port, "/nope", "{}")).status).toBe(404);
    expect((await post(port, PEER_CHECK_PATH, "", "GET")).status).toBe(405);
    expect((await post(port, PEER_CHECK_PATH, "{not json")).status).toBe(400);
    const bad = await post(port, PEER_CHECK_PATH, JSON.stringify({ from: "A!", about: "a" }));
    expect(bad.status).toBe(400);
    expect(bad.body).toContain("from");
    expect((await post(port, PEER_CHECK_PATH, JSON.stringify({ from: "a", about: "a", pad: "x".repeat(10_000) }))).status).toBe(413);
    expect((await post(port, PEER_CHECK_PATH, JSON.stringify({ from: "a", about: "a" }))).status).toBe(200);
  });
});
