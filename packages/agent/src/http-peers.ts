import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { parsePeerAnswer, parsePeerQuestion, type PeerAnswer } from "./peer-protocol.js";
import type { PeerQuestionHandler, PeerTransport } from "./ports.js";

export const PEER_CHECK_PATH = "/v1/peer-check";
const MAX_BODY_BYTES = 4096;

/** PEM contents (not paths). Enables HTTPS with mutual TLS: both sides present a cert signed by `ca`. */
export interface PeerTlsOptions {
  key: string | Buffer;
  cert: string | Buffer;
  ca: string | Buffer;
}

export interface HttpPeerTransportOptions {
  node: string;
  /** Where this agent answers its peers. Port 0 picks a free one (tests). */
  listen: { host: string; port: number };
  tls?: PeerTlsOptions;
  log: Logger;
}

export interface HttpPeerTransport extends PeerTransport {
  /** Starts answering on `listen`; resolves with the bound address. */
  listen(): Promise<{ host: string; port: number }>;
}

/**
 * Agent-to-agent questions over HTTP(S): `POST /v1/peer-check` with a PeerQuestion as JSON,
 * answered with a PeerAnswer, at the base URL the asker has for the peer (from the membership
 * view, e.g. http://10.0.0.12:9797). Independent of NATS on purpose: it is what agents use when
 * the control plane is gone.
 */
export function createHttpPeerTransport(options: HttpPeerTransportOptions): HttpPeerTransport {
  const { tls } = options;
  const log = options.log.child({ component: "http-peers" });
  let handler: PeerQuestionHandler | undefined;

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const reply = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
    };
    if (new URL(req.url ?? "/", "http://peer").pathname !== PEER_CHECK_PATH) return reply(404, { error: "not found" });
    if (req.method !== "POST") return reply(405, { error: "use POST" });
    readBody(req).then(
      async (body) => {
        if (body === undefined) {
          res.setHeader("connection", "close");
          return reply(413, { error: `body larger than ${MAX_BODY_BYTES} bytes` });
        }
        let json: unknown;
        try {
          json = JSON.parse(body);
        } catch {
          return reply(400, { error: "body is not JSON" });
        }
        const question = parsePeerQuestion(json);
        if (!question.ok) return reply(400, { error: question.error });
        if (!handler) return reply(503, { error: "agent not ready" });
        try {
          reply(200, await handler(question.value));
        } catch (err) {
          log.error({ err }, "answering a peer failed");
          reply(500, { error: "internal error" });
        }
      },
      () => res.destroy(),
    );
  };

  const server = tls
    ? https.createServer({ key: tls.key, cert: tls.cert, ca: tls.ca, requestCert: true, rejectUnauthorized: true }, onRequest)
    : http.createServer(onRequest);
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;

  return {
    listen: () =>
      new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(options.listen.port, options.listen.host, () => {
          server.off("error", reject);
          const address = server.address() as AddressInfo;
          log.info({ host: address.address, port: address.port, tls: Boolean(tls) }, "answering peers");
          resolve({ host: address.address, port: address.port });
        });
      }),

    serve: (next) => {
      handler = next;
    },

    ask: (peer, question, timeoutMs) =>
      new Promise<PeerAnswer | undefined>((resolve) => {
        if (!peer.url) {
          log.debug({ peer: peer.node }, "no URL for this peer: it advertised none");
          return resolve(undefined);
        }
        let url: URL;
        try {
          url = new URL(`${peer.url.replace(/\/+$/, "")}${PEER_CHECK_PATH}`);
          if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`unsupported protocol ${url.protocol}`);
          if (tls && url.protocol !== "https:") throw new Error("plain http to a peer while mutual TLS is on");
        } catch (err) {
          log.warn({ peer: peer.node, url: peer.url, err: (err as Error).message }, "unusable peer URL");
          return resolve(undefined);
        }
        const body = JSON.stringify(question);
        const request = url.protocol === "https:" ? https.request : http.request;
        const noAnswer = (why: string) => {
          log.debug({ peer: peer.node, why }, "no answer from peer");
          resolve(undefined);
        };
        const req = request(
          url,
          {
            method: "POST",
            headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
            signal: AbortSignal.timeout(timeoutMs),
            agent: false,
            ...(tls ? { key: tls.key, cert: tls.cert, ca: tls.ca } : {}),
          },
          (res) => {
            if (res.statusCode !== 200) {
              res.resume();
              return noAnswer(`HTTP ${res.statusCode}`);
            }
            readBody(res).then(
              (text) => {
                if (text === undefined) {
                  res.destroy();
                  return noAnswer("answer too large");
                }
                let json: unknown;
                try {
                  json = JSON.parse(text);
                } catch {
                  return noAnswer("answer is not JSON");
                }
                const answer = parsePeerAnswer(json);
                if (!answer.ok) return noAnswer(`invalid answer: ${answer.error}`);
                resolve(answer.value);
              },
              (err: Error) => noAnswer(err.message),
            );
          },
        );
        req.on("error", (err) => noAnswer(err.name === "AbortError" ? `timed out after ${timeoutMs}ms` : err.message));
        req.end(body);
      }),

    close: () =>
      new Promise<void>((resolve) => {
        handler = undefined;
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The body as text, or undefined as soon as it exceeds MAX_BODY_BYTES (the rest is ignored). */
function readBody(stream: http.IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) return resolve(undefined);
      chunks.push(chunk);
    });
    stream.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    stream.on("error", reject);
    stream.on("close", () => reject(new Error("connection closed before the end of the body")));
  });
}
