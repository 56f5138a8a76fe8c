import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FenceDeviceConfig, FenceDevicesConfig, loadFenceDevices, resolveTarget } from "../src/fence-agents/config.js";
import { createFenceAgentDevice } from "../src/fence-agents/device.js";
import { FenceErrorCode, isFenceAgentError } from "../src/fence-agents/errors.js";
import type { FenceAgentRun, RunFenceAgentOptions } from "../src/fence-agents/run-fence-agent.js";
import { createSecretReader } from "../src/fence-agents/secrets.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "fl-fence-devices-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const device = (input: unknown) => FenceDeviceConfig.parse(input);

describe("fence devices configuration", () => {
  it("merges parameters: device, then host group, then node patterns, then the exact node; true is 1 and false leaves it out", () => {
    const ipmi = device({
      agent: "fence_ipmilan",
      params: { lanplus: true, cipher: 3, username: "admin", method: "onoff" },
      password: { file: "/etc/fenceline/bmc" },
      hostGroups: { workers: { params: { username: "ops" }, password: { file: "/etc/fenceline/workers" } } },
      nodes: {
        "rack1-*": { params: { ipport: 6230, method: false } },
        "rack1-node-*": { params: { ipport: 6231 } },
        "rack1-node-7": { params: { ip: "10.0.1.7" } },
        "vm-*": { params: { plug: "{node}.{hostGroup}" } },
      },
    });
    expect(resolveTarget(ipmi, "rack1-node-7", "workers")).toEqual({
      params: { lanplus: "1", cipher: "3", username: "ops", ipport: "6231", ip: "10.0.1.7" },
      secrets: { password: { file: "/etc/fenceline/workers" } },
    });
    expect(resolveTarget(ipmi, "vm-3", "db")?.params.plug).toBe("vm-3.db");
    expect(resolveTarget(ipmi, "edge-1")).toBeNull();
    expect(resolveTarget(ipmi, "edge-1", "workers")?.params.username).toBe("ops");
    // A device that names no node and no group covers every node.
    expect(resolveTarget(device({ agent: "fence_virsh", params: { plug: "{node}" } }), "any")?.params).toEqual({ plug: "any" });
  });

  it("refuses a password written inline, and a device called watchdog", () => {
    const inline = FenceDevicesConfig.safeParse({
      devices: { ipmi: { agent: "fence_ipmilan", nodes: { n1: { params: { passwd: "x" } } } } },
    });
    expect(inline.success).toBe(false);
    expect(JSON.stringify(inline.error?.issues)).toContain("never inline in params");
    expect(FenceDevicesConfig.safeParse({ devices: { watchdog: { agent: "fence_ipmilan" } } }).success).toBe(false);
    expect(FenceDevicesConfig.safeParse({ devices: { ipmi: { agent: "fence_ipmilan", password: { value: "x" } } } }).success).toBe(false);
  });

  it("loads a file and lists every problem", async () => {
    const file = join(dir, "bad.json");
    await writeFile(file, JSON.stringify({ devices: { ipmi: { agent: "fence_ipmilan", retries: -1, timeoutMs: "soon" } } }));
    expect(() => loadFenceDevices(file)).toThrow(/invalid fence devices .*bad\.json:\n[\s\S]*devices\.ipmi\.timeoutMs/);
    expect(() => loadFenceDevices(file)).toThrow(/devices\.ipmi\.retries/);
    expect(() => loadFenceDevices(join(dir, "missing.json"))).toThrow(/cannot read fence devices/);
  });
});

describe("credentials", () => {
  it("reads a password file without its trailing line break, an environment variable, and a Kubernetes Secret through the API", async () => {
    const file = join(dir, "pw");
    await writeFile(file, "s3cret\n");
    const seen: unknown[] = [];
    const read = createSecretReader({
      kubernetes: async (ref) => {
        seen.push(ref);
        return "from-secret";
      },
    });
    expect(await read({ file })).toBe("s3cret");
    process.env.FL_TEST_BMC_PASSWORD = "from-env";
    expect(await read({ env: "FL_TEST_BMC_PASSWORD" })).toBe("from-env");
    expect(await read({ secret: { namespace: "fenceline", name: "bmc", key: "password" } })).toBe("from-secret");
    expect(seen).toEqual([{ namespace: "fenceline", name: "bmc", key: "password" }]);
  });

  it("says which source failed, without any secret in the message", async () => {
    const read = createSecretReader();
    await expect(read({ file: join(dir, "nope") })).rejects.toThrow(/cannot read the password file .*nope: ENOENT/);
    await expect(read({ env: "FL_TEST_UNSET_VARIABLE" })).rejects.toThrow(/FL_TEST_UNSET_VARIABLE .* is not set/);
    await expect(read({ secret: { namespace: "a", name: "b", key: "c" } })).rejects.toThrow(
      /Secret a\/b key c: reading a Kubernetes Secret needs --kubeconfig or --in-cluster/,
    );
  });
});

/** A scripted runner: each call takes the next answer; records what it was asked. */
function scripted(answers: Array<Partial<FenceAgentRun> & { output: string }>) {
  const calls: RunFenceAgentOptions[] = [];
  const run = async (options: RunFenceAgentOptions): Promise<FenceAgentRun> => {
    calls.push(options);
    const next = answers.shift();
    if (!next) throw new Error("no more scripted answers");
    return { action: options.action, exitCode: 1, durationMs: 30, timedOut: false, ...next };
  };
  return { run, calls };
}

describe("a fence agent device", () => {
  const config = (extra: Record<string, unknown> = {}) =>
    device({
      agent: "fence_ipmilan",
      params: { lanplus: 1, username: "admin" },
      password: { env: "FL_TEST_BMC" },
      nodes: { "node-1": { params: { ip: "10.0.0.1" } } },
      retryDelayMs: 10,
      ...extra,
    });
  process.env.FL_TEST_BMC = "pw";

  it("retries a BMC that does not answer, and keeps every attempt's output", async () => {
    const { run, calls } = scripted([
      { output: "ERROR: Connection timed out\n", durationMs: 2_000 },
      { output: "Success: Powered OFF\n", exitCode: 0 },
    ]);
    const d = createFenceAgentDevice("ipmi", config(), { readSecret: createSecretReader(), run });
    const answer = await d.agent.powerOff({ node: "node-1" });
    expect(calls).toHaveLength(2);
    expect(calls[0]).toMatchObject({
      agent: "fence_ipmilan",
      action: "off",
      params: { verbose: "1", power_timeout: "16", retry_on: "0", lanplus: "1", username: "admin", ip: "10.0.0.1" },
      secrets: { password: "pw" },
      timeoutMs: 20_000,
    });
    expect(answer.output).toContain("# fence_ipmilan off (attempt 1/3): exit 1 after 2.0 s\nERROR: Connection timed out");
    expect(answer.output).toContain("# fence_ipmilan off (attempt 2/3): exit 0");
  });

  it("runs the agent verbose and with its power_timeout inside ours, unless configured otherwise", async () => {
    const { run, calls } = scripted([{ output: "Status: ON\n", exitCode: 0 }]);
    const d = createFenceAgentDevice(
      "ipmi",
      config({ params: { verbose: false, power_timeout: 5, username: "admin" }, timeoutMs: 3_000 }),
      { readSecret: createSecretReader(), run },
    );
    await d.agent.status({ node: "node-1" });
    expect(calls[0]!.params).toEqual({ power_timeout: "5", retry_on: "0", username: "admin", ip: "10.0.0.1" });
    expect(calls[0]!.timeoutMs).toBe(3_000);
  });

  it("does not retry a refused login", async () => {
    const { run, calls } = scripted([{ output: "Error: Unable to establish IPMI v2 / RMCP+ session\n", durationMs: 60 }]);
    const d = createFenceAgentDevice("ipmi", config(), { readSecret: createSecretReader(), run });
    const err = await d.agent.status({ node: "node-1" }).catch((e: unknown) => e);
    expect(isFenceAgentError(err, FenceErrorCode.Auth)).toBe(true);
    expect(calls).toHaveLength(1);
  });

  it("gives up after its retries with the last error and the number of attempts", async () => {
    const { run, calls } = scripted([0, 1, 2].map(() => ({ output: "ERROR: Connection timed out\n" })));
    const d = createFenceAgentDevice("ipmi", config(), { readSecret: createSecretReader(), run });
    const err = await d.agent.powerOff({ node: "node-1" }).catch((e: unknown) => e);
    expect(calls).toHaveLength(3);
    expect(isFenceAgentError(err, FenceErrorCode.Unreachable)).toBe(true);
    expect((err as Error).message).toMatch(
      /^fence_ipmilan off for node-1 \(device ipmi\): the device could not be reached .* \(3 attempts\)$/,
    );
  });

  it("never runs past the caller's deadline: a run gets at most the time left, and no retry starts after it", async () => {
    const { run, calls } = scripted([{ output: "ERROR: Connection timed out\n" }, { output: "Success: Powered OFF\n", exitCode: 0 }]);
    const d = createFenceAgentDevice("ipmi", config({ retryDelayMs: 500 }), { readSecret: createSecretReader(), run });
    const err = await d.agent.powerOff({ node: "node-1", deadline: Date.now() + 300 }).catch((e: unknown) => e);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.timeoutMs).toBeLessThanOrEqual(300);
    // The agent's own wait is cut to the time left too.
    expect(calls[0]!.params.power_timeout).toBe("1");
    expect(isFenceAgentError(err, FenceErrorCode.Unreachable)).toBe(true);
  });

  it("covers only the nodes it names, and says so for another", async () => {
    const { run } = scripted([]);
    const d = createFenceAgentDevice("ipmi", config(), { readSecret: createSecretReader(), run });
    expect(d.agent.covers("node-1")).toBe(true);
    expect(d.agent.covers("node-2")).toBe(false);
    await expect(d.agent.status({ node: "node-2" })).rejects.toThrow(/device ipmi\): the device has no entry for this node/);
  });
});
