import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { connectNats, natsConnectionOptions, redactUrl, startNatsServer } from "@fenceline/bus";
import { main } from "@fenceline/cli";
import { Subjects } from "@fenceline/streams";
import { agentPermissions, fencelineUsers, quote, renderNatsConfig, rolePermissions, ROLES } from "@fenceline/streams";

/** `fenceline nats-config` and the credentials side of connectNats. */
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "fl-nats-config-"));
  vi.spyOn(console, "error").mockImplementation(() => {});
});
afterAll(() => vi.restoreAllMocks());

const run = (...argv: string[]) => main(["nats-config", ...argv]);

describe("permissions as data", () => {
  it("an agent may publish only its own heartbeats (plus state lookups and its dead letters) and receive only its own subjects", () => {
    const p = agentPermissions("db-1.rack2");
    expect(p.publish.allow).toEqual(["fl.hb.db-1_rack2", "fl.state.*", "fl.dlq.agent"]);
    expect(p.subscribe.allow).toEqual(["fl.hback.db-1_rack2", "fl.agent.db-1_rack2.cmd", "_INBOX.agent.db-1_rack2.>"]);
    expect(p.allowResponses).toBe(true);
  });

  it("only the engine publishes commands; nobody but the engine and the operator's CLI touches FL_NODES keys", () => {
    for (const role of ROLES) {
      const p = rolePermissions(role);
      const commands = p.publish.allow.some((s) => s.startsWith("fl.cmd"));
      expect(commands, role).toBe(role === "engine" || role === "control-plane");
      expect(p.publish.allow, role).not.toContain(">");
      expect(p.subscribe.allow, role).not.toContain(">");
      expect(p.publish.allow.includes("$KV.FL_NODES.>"), role).toBe(role === "engine" || role === "control-plane");
    }
    expect(rolePermissions("detector").publish.allow).toContain(Subjects.eventAll);
    expect(rolePermissions("detector").publish.allow).not.toContain("_INBOX.>");
  });

  it("renders a configuration nats-server accepts, with quoted strings", async () => {
    expect(quote('a"b\\c')).toBe('"a\\"b\\\\c"');
    const users = fencelineUsers(["node-1"], (u) => ({ password: `pw "${u}"` }));
    const text = renderNatsConfig({ users, host: "127.0.0.1", port: 4222 });
    expect(text).toContain('user: "agent-node-1"');
    expect(text).toContain('password: "pw \\"agent-node-1\\""');
    const file = join(dir, "render.conf");
    writeFileSync(file, text);
    const server = await startNatsServer({ configFile: file });
    try {
      const nc = await connectNats(`nats://agent-node-1:${encodeURIComponent('pw "agent-node-1"')}@127.0.0.1:${server.port}`, {
        name: "t",
      });
      await nc.close();
    } finally {
      await server.stop();
    }
  });
});

describe("fenceline nats-config", () => {
  it("writes the configuration and the secrets (mode 0600), keeps passwords across runs, drops removed nodes", async () => {
    const out = join(dir, "a", "nats.conf");
    execFileSync("mkdir", ["-p", join(dir, "a")]);
    expect(await run("--nodes", "node-1,node-2", "--out", out, "--port", "4333")).toBe(0);
    const secretsFile = join(dir, "a", "fenceline-nats-secrets.json");
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(statSync(secretsFile).mode & 0o777).toBe(0o600);
    const first = JSON.parse(readFileSync(secretsFile, "utf8")) as Record<string, string>;
    expect(Object.keys(first).sort()).toEqual([
      "actuator",
      "agent-node-1",
      "agent-node-2",
      "cli",
      "control-plane",
      "detector",
      "engine",
      "serf",
    ]);
    const text = readFileSync(out, "utf8");
    expect(text).toContain("port: 4333");
    for (const [user, password] of Object.entries(first))
      expect(text).toContain(`user: ${quote(user)}\n      password: ${quote(password)}`);

    // node-2 leaves, node-3 joins: everyone else keeps their password.
    const nodesFile = join(dir, "a", "nodes.txt");
    writeFileSync(nodesFile, "# the fleet\nnode-1\nnode-3  # new\n\n");
    expect(await run("--nodes-file", nodesFile, "--out", out)).toBe(0);
    const second = JSON.parse(readFileSync(secretsFile, "utf8")) as Record<string, string>;
    expect(second["agent-node-2"]).toBeUndefined();
    expect(second["agent-node-3"]).toMatch(/^[A-Za-z0-9_-]{32}$/);
    for (const user of ["engine", "agent-node-1", "cli"]) expect(second[user]).toBe(first[user]);
    expect(readFileSync(out, "utf8")).not.toContain("agent-node-2");
  });

  it("refuses bad input with a usage error", async () => {
    expect(await run()).toBe(2);
    expect(await run("--nodes", "Node_1")).toBe(2);
    expect(await run("--nodes", "n1", "--port", "99999")).toBe(2);
    expect(await run("--nodes", "n1", "--tls-cert", "/nonexistent")).toBe(2);
    expect(await run("--nodes", "n1", "--auth", "jwt")).toBe(2);
  });

  it("--auth nkey: public keys in the configuration, seeds in the secrets; a process connects with NATS_NKEY", async () => {
    const out = join(dir, "nkey.conf");
    const secrets = join(dir, "nkey-secrets.json");
    expect(await run("--nodes", "node-1", "--auth", "nkey", "--out", out, "--password-file", secrets, "--host", "127.0.0.1")).toBe(0);
    const seeds = JSON.parse(readFileSync(secrets, "utf8")) as Record<string, string>;
    expect(seeds["agent-node-1"]).toMatch(/^SU[A-Z0-9]+$/);
    const text = readFileSync(out, "utf8");
    expect(text).toMatch(/nkey: "U[A-Z0-9]{55}"/);
    expect(text).not.toContain("password:");
    const seedFile = join(dir, "agent-node-1.nk");
    writeFileSync(seedFile, `${seeds["agent-node-1"]}\n`, { mode: 0o600 });
    const server = await startNatsServer({ configFile: out });
    try {
      const nc = await connectNats(`nats://127.0.0.1:${server.port}`, { name: "nkey", env: { NATS_NKEY: seedFile } });
      nc.publish(Subjects.heartbeat("node-1"), "{}");
      await nc.flush();
      await nc.close();
      await expect(connectNats(`nats://127.0.0.1:${server.port}`, { name: "anonymous", env: {} })).rejects.toThrow(
        /Authorization Violation/,
      );
    } finally {
      await server.stop();
    }
  });

  const openssl = (() => {
    try {
      execFileSync("openssl", ["version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!openssl)(
    "--tls-*: mutual TLS; a process trusts the CA with NATS_CA and shows its certificate with NATS_CERT/NATS_KEY",
    async () => {
      const pki = join(dir, "pki");
      execFileSync("mkdir", ["-p", pki]);
      const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: pki, stdio: "ignore" });
      ssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=fenceline-test-ca",
      );
      const issue = (name: string, ext: string) => {
        ssl(
          "req",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:P-256",
          "-nodes",
          "-keyout",
          `${name}.key`,
          "-out",
          `${name}.csr`,
          "-subj",
          `/CN=${name}`,
        );
        writeFileSync(join(pki, `${name}.ext`), ext);
        ssl(
          "x509",
          "-req",
          "-in",
          `${name}.csr`,
          "-CA",
          "ca.crt",
          "-CAkey",
          "ca.key",
          "-CAcreateserial",
          "-out",
          `${name}.crt`,
          "-days",
          "1",
          "-extfile",
          `${name}.ext`,
        );
      };
      issue("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
      issue("agent", "extendedKeyUsage=clientAuth\n");
      const out = join(dir, "tls.conf");
      const secrets = join(dir, "tls-secrets.json");
      const p = (f: string) => join(pki, f);
      expect(
        await run(
          "--nodes",
          "node-1",
          "--out",
          out,
          "--password-file",
          secrets,
          "--tls-cert",
          p("server.crt"),
          "--tls-key",
          p("server.key"),
          "--tls-ca",
          p("ca.crt"),
          "--tls-verify",
        ),
      ).toBe(0);
      expect(readFileSync(out, "utf8")).toContain("verify: true");
      const password = (JSON.parse(readFileSync(secrets, "utf8")) as Record<string, string>)["agent-node-1"]!;
      const server = await startNatsServer({ configFile: out });
      try {
        const url = `tls://agent-node-1:${password}@127.0.0.1:${server.port}`;
        const nc = await connectNats(url, {
          name: "tls",
          env: { NATS_CA: p("ca.crt"), NATS_CERT: p("agent.crt"), NATS_KEY: p("agent.key") },
        });
        nc.publish(Subjects.heartbeat("node-1"), "{}");
        await nc.flush();
        await nc.close();
        // No client certificate, or a CA it does not trust: refused (and the password is not shown).
        const noCert = connectNats(url, { name: "no-cert", env: { NATS_CA: p("ca.crt") }, timeoutMs: 1_500 });
        await expect(noCert).rejects.toThrow(/cannot connect to NATS at tls:\/\/agent-node-1:\*\*\*@127\.0\.0\.1/);
        await expect(connectNats(url, { name: "no-ca", env: {}, timeoutMs: 1_500 })).rejects.toThrow();
      } finally {
        await server.stop();
      }
      expect(existsSync(p("ca.srl"))).toBe(true);
    },
  );
});

describe("connectNats credentials", () => {
  it("takes user:password (percent-decoded) or a token from the URL, else the environment", () => {
    const o = natsConnectionOptions("nats://engine:p%40ss%3Aword@10.0.0.1:4222", { name: "x", env: {} });
    expect(o).toMatchObject({ servers: ["nats://10.0.0.1:4222"], user: "engine", pass: "p@ss:word" });
    expect(natsConnectionOptions("nats://s3cret@h:4222", { name: "x", env: {} })).toMatchObject({
      servers: ["nats://h:4222"],
      token: "s3cret",
    });
    expect(natsConnectionOptions("nats://h:1,nats://u:p@h2:2", { name: "x", env: {} })).toMatchObject({
      servers: ["nats://h:1", "nats://h2:2"],
      user: "u",
      pass: "p",
    });
    const env = natsConnectionOptions("nats://h:4222", {
      name: "x",
      env: { NATS_USER: "cli", NATS_PASSWORD: "pw", NATS_INBOX_PREFIX: "_INBOX.serf" },
    });
    expect(env).toMatchObject({ user: "cli", pass: "pw", inboxPrefix: "_INBOX.serf" });
    expect(natsConnectionOptions("nats://h:4222", { name: "x", env: {} }).tls).toBeUndefined();
    expect(natsConnectionOptions("tls://h:4222", { name: "x", env: { NATS_CA: "/ca.pem" } }).tls).toEqual({ caFile: "/ca.pem" });
  });

  it("never shows a password", () => {
    expect(redactUrl("nats://engine:secret@h:4222")).toBe("nats://engine:***@h:4222");
    expect(redactUrl("tls://tok@h:1,nats://h2:2")).toBe("tls://***@h:1,nats://h2:2");
    expect(redactUrl("nats://h:4222")).toBe("nats://h:4222");
  });
});
