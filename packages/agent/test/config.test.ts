import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { nextIncarnation, readBootId } from "../src/boot-identity.js";
import { AgentConfigError, loadAgentConfig, parseAgentConfig } from "../src/config.js";

describe("agent config", () => {
  it("fills defaults from an empty file", () => {
    const config = parseAgentConfig({}, { hostname: "Worker-1" });
    expect(config).toMatchObject({
      node: "worker-1",
      nats: { url: "nats://127.0.0.1:4222" },
      peerListen: { host: "0.0.0.0", port: 9797 },
      peers: [],
      watchdog: { path: "/dev/watchdog", fallbackRebootCommand: null },
      heartbeatIntervalMs: 1_000,
      timing: { controlPlaneTimeoutMs: 5_000, peerRoundMs: 2_000, watchdogTimeoutMs: 10_000, marginMs: 5_000 },
      incarnationFile: "/var/lib/fenceline/agent/incarnation",
      selfFenceFile: "/var/lib/fenceline/agent/self-fence.json",
      membershipFile: "/var/lib/fenceline/agent/membership.json",
      bootIdFile: "/proc/sys/kernel/random/boot_id",
    });
    // Listening on every address: where peers reach it cannot be guessed.
    expect(config.peerAdvertiseUrl).toBeUndefined();
  });

  it("parses a full config with durations and services", () => {
    const config = parseAgentConfig({
      node: "w1",
      peers: [
        { node: "w2", url: "http://10.0.0.2:9797" },
        { node: "w3", url: "http://10.0.0.3:9797" },
      ],
      peerListen: { host: "10.0.0.1" },
      heartbeatInterval: "500ms",
      timing: { controlPlaneTimeoutMs: "3s", peerRoundMs: 1500 },
      watchdog: { fallbackRebootCommand: ["systemctl", "reboot", "-f"], sysfsDir: "/tmp/wd" },
      services: { kubelet: { files: ["/etc/kubelet.conf"], commands: ["kubelet --version"] } },
      stateDir: "/tmp/fl",
      hostGroup: "workers",
    });
    expect(config).toMatchObject({ heartbeatIntervalMs: 500, timing: { controlPlaneTimeoutMs: 3_000, peerRoundMs: 1_500 } });
    expect(config.watchdog).toEqual({ path: "/dev/watchdog", sysfsDir: "/tmp/wd", fallbackRebootCommand: ["systemctl", "reboot", "-f"] });
    expect(config.peerAdvertiseUrl).toBe("http://10.0.0.1:9797");
    expect(config.membershipFile).toBe("/tmp/fl/membership.json");
    expect(config.incarnationFile).toBe("/tmp/fl/incarnation");
    expect(config.services.kubelet?.commands).toEqual(["kubelet --version"]);
  });

  it("lists every problem with its path", () => {
    let error: AgentConfigError | undefined;
    try {
      parseAgentConfig({
        node: "w1",
        peers: [{ node: "w1", url: "ftp://x" }, { node: "w2" }],
        fleetSize: 2,
        peerAdvertiseUrl: "tcp://10.0.0.1",
        timing: { peerRoundMs: "soon" },
        heartbeatInterval: "2s",
        extra: true,
      });
    } catch (err) {
      error = err as AgentConfigError;
    }
    expect(error).toBeInstanceOf(AgentConfigError);
    const text = error!.issues.join("\n");
    expect(text).toMatch(/extra: unknown key/);
    expect(text).toMatch(/peers\[0\]\.node: is this node itself/);
    expect(text).toMatch(/peers\[0\]\.url: must be a http: or https: URL/);
    expect(text).toMatch(/peers\[1\]\.url/);
    expect(text).toMatch(/fleetSize: is no longer supported: the fleet and its size are learned from the control plane/);
    expect(text).toMatch(/peerAdvertiseUrl: must be a http: or https: URL/);
    expect(text).toMatch(/timing\.peerRoundMs/);
    expect(text).toMatch(/timing\.controlPlaneTimeoutMs: must be more than 3 heartbeat intervals/);
    expect(error!.message.split("\n")).toHaveLength(1);
  });

  it("advertises an https URL with tls, and refuses a plain one", () => {
    const tls = { keyFile: "k", certFile: "c", caFile: "ca" };
    expect(parseAgentConfig({ node: "w1", tls, peerListen: { host: "10.0.0.1", port: 9443 } }).peerAdvertiseUrl).toBe(
      "https://10.0.0.1:9443",
    );
    expect(parseAgentConfig({ node: "w1", peerListen: { host: "fd00::1" } }).peerAdvertiseUrl).toBe("http://[fd00::1]:9797");
    expect(() => parseAgentConfig({ node: "w1", tls, peerAdvertiseUrl: "http://10.0.0.1:9797" })).toThrow(
      /peerAdvertiseUrl: use an https:\/\/ URL when tls is set/,
    );
  });

  it("says what is wrong with each key, in words, and names every unknown key with the keys it knows (zod schema)", () => {
    let error: AgentConfigError | undefined;
    try {
      parseAgentConfig(
        {
          nats: { url: 5, user: "x" },
          peerListen: { port: 70_000 },
          watchdog: "dev",
          timing: { peerRoundMs: "soon", bogus: 1 },
          services: { kubelet: { files: "a" } },
          logLevel: "loud",
          controlPlane: "yes",
          checksumInterval: 0,
        },
        { hostname: "h1" },
      );
    } catch (err) {
      error = err as AgentConfigError;
    }
    expect(error!.issues).toEqual([
      "nats.url: must be a non-empty string of at most 4096 characters",
      "nats.user: unknown key (known: url)",
      "peerListen.port: must be a port number (0 to 65535)",
      "watchdog: must be an object",
      'timing.peerRoundMs: must be a duration of at least 0ms, like "500ms", "5s" or 5000',
      "timing.bogus: unknown key (known: controlPlaneTimeoutMs, peerRoundMs, watchdogTimeoutMs, marginMs)",
      "services.kubelet.files: must be an array",
      'checksumInterval: must be a duration of at least 1ms, like "500ms", "5s" or 5000',
      "controlPlane: must be true or false",
      "logLevel: must be one of fatal, error, warn, info, debug, trace, silent",
    ]);
    expect(() => parseAgentConfig("agent.json")).toThrow("invalid agent config (inline): (root): must be an object");
    expect(() => parseAgentConfig({}, { hostname: "Not A Name!" })).toThrow(/node: .* \(the hostname; set "node"\)/);
  });

  it("loads a file and reports unreadable or non-JSON files in one line", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fl-config-"));
    try {
      const path = join(dir, "agent.json");
      await writeFile(path, JSON.stringify({ node: "w1" }));
      expect((await loadAgentConfig(path)).node).toBe("w1");
      await writeFile(path, "{");
      await expect(loadAgentConfig(path)).rejects.toThrow(/not JSON/);
      await expect(loadAgentConfig(join(dir, "missing.json"))).rejects.toThrow(/cannot read it: ENOENT/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("boot identity", () => {
  it("reads the boot id and grows the incarnation on every start", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fl-identity-"));
    try {
      await writeFile(join(dir, "boot_id"), "1b2c-33\n");
      expect(await readBootId(join(dir, "boot_id"))).toBe("1b2c-33");
      const file = join(dir, "state", "incarnation");
      expect(await nextIncarnation(file)).toBe(1);
      expect(await nextIncarnation(file)).toBe(2);
      await writeFile(file, "garbage");
      await expect(nextIncarnation(file)).rejects.toThrow(/incarnation number/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
