import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FenceErrorCode, isFenceAgentError } from "../src/fence-agents/errors.js";
import { agentReadBackOff, confirmAction, failureOf, powerOf } from "../src/fence-agents/interpret.js";
import { resolveAgent, runFenceAgent, stdinLines, type FenceAgentRun } from "../src/fence-agents/run-fence-agent.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "fl-fence-run-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A fake fence agent: a shell script with the standard interface (parameters on stdin). */
async function fakeAgent(name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

const alive = async (pid: number) => {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
};

const run = (fields: Partial<FenceAgentRun> & { output: string }): FenceAgentRun => ({
  action: "status",
  exitCode: 1,
  durationMs: 50,
  timedOut: false,
  ...fields,
});

describe("running a fence agent", () => {
  it("passes every parameter as a key=value line on stdin and nothing in the process arguments", async () => {
    const agent = await fakeAgent(
      "fence_record",
      `tr '\\0' ' ' < /proc/$$/cmdline > "${dir}/argv"; cat > "${dir}/stdin"; env > "${dir}/env"; echo "Status: ON"`,
    );
    const result = await runFenceAgent({
      agent,
      action: "status",
      params: { ip: "10.0.0.11", username: "admin", lanplus: "1" },
      secrets: { password: "pa55-word" },
      timeoutMs: 5_000,
    });
    expect(result).toMatchObject({ exitCode: 0, timedOut: false });
    expect((await readFile(join(dir, "stdin"), "utf8")).split("\n")).toEqual([
      "action=status",
      "ip=10.0.0.11",
      "username=admin",
      "lanplus=1",
      "password=pa55-word",
      "",
    ]);
    const argv = await readFile(join(dir, "argv"), "utf8");
    expect(argv.trim()).toBe(`/bin/sh ${agent}`);
    expect(argv).not.toContain("pa55-word");
    // A clean environment: nothing of ours (NATS credentials, tokens) leaks into the agent.
    const env = await readFile(join(dir, "env"), "utf8");
    expect(env).toContain("LANG=C");
    expect(env).not.toContain("VITEST");
  });

  it("redacts the password from the output, also URL-encoded and inside a basic-auth header", async () => {
    const agent = await fakeAgent(
      "fence_leaky",
      `cat > /dev/null; echo "DEBUG: login admin/s3cr et+1"; echo "DEBUG: url https://bmc/?p=s3cr%20et%2B1"; echo "Authorization: Basic $(printf 'admin:s3cr et+1' | base64)"; echo "Status: OFF"; exit 2`,
    );
    const result = await runFenceAgent({
      agent,
      action: "status",
      params: { username: "admin" },
      secrets: { password: "s3cr et+1" },
      timeoutMs: 5_000,
    });
    expect(result.output).not.toContain("s3cr");
    expect(result.output).not.toContain(Buffer.from("admin:s3cr et+1").toString("base64"));
    expect(result.output.match(/\[redacted\]/g)).toHaveLength(3);
    expect(powerOf(result, "status")).toBe("off");
  });

  it("kills an agent that runs past its timeout, and everything it started", async () => {
    const agent = await fakeAgent("fence_hung", `cat > /dev/null; sleep 30 & echo $! > "${dir}/child"; echo $$ > "${dir}/self"; wait`);
    const result = await runFenceAgent({ agent, action: "off", params: {}, timeoutMs: 300 });
    expect(result.timedOut).toBe(true);
    expect(result.exitCode).toBeNull();
    expect(result.durationMs).toBeGreaterThanOrEqual(300);
    const child = Number(await readFile(join(dir, "child"), "utf8"));
    const self = Number(await readFile(join(dir, "self"), "utf8"));
    await new Promise((r) => setTimeout(r, 100));
    expect(await alive(child)).toBe(false);
    expect(await alive(self)).toBe(false);
    const err = failureOf(result, "fence_hung off for node-1 (device ipmi)");
    expect(err.code).toBe(FenceErrorCode.Timeout);
    expect(err.message).toMatch(/^fence_hung off for node-1 \(device ipmi\): no answer within \d+ ms; the agent was killed/);
  });

  it("refuses a parameter value with a line break, which would inject another parameter", () => {
    expect(() => stdinLines("off", { ip: "10.0.0.1\naction=on" })).toThrow(/ip = "10.0.0.1\\naction=on" contains a line break/);
    try {
      stdinLines("off", {}, { password: "x\nplug=2" });
      expect.unreachable();
    } catch (err) {
      expect(isFenceAgentError(err, FenceErrorCode.InvalidConfig)).toBe(true);
      expect((err as Error).message).toContain("password = [redacted]");
      expect((err as Error).message).not.toContain("plug=2");
    }
    expect(() => stdinLines("off", { "Bad-Name": "1" })).toThrow(/not a fence agent parameter/);
    expect(() => stdinLines("off", { action: "on" })).toThrow(/action is set by Fenceline/);
  });

  it("finds agents on PATH and in /usr/sbin, and says where it looked when one is missing", () => {
    expect(resolveAgent("fence_ipmilan")).toBe("/usr/sbin/fence_ipmilan");
    expect(() => resolveAgent("fence_nonexistent")).toThrow(
      /fence_nonexistent not found on PATH or in \/usr\/sbin.*apt-get install fence-agents/,
    );
    expect(() => resolveAgent("rm -rf /")).toThrow(/give a name like fence_ipmilan or an absolute path/);
    expect(() => resolveAgent("/nonexistent/fence_x")).toThrow(/does not exist or is not executable/);
  });
});

describe("reading a fence agent's answer", () => {
  it("reads Status: ON (exit 0) and Status: OFF (exit 2), and nothing else", () => {
    expect(powerOf(run({ exitCode: 0, output: "Status: ON\n" }), "s")).toBe("on");
    expect(powerOf(run({ exitCode: 2, output: "Status: OFF\n" }), "s")).toBe("off");
    // What the library prints must agree with how it exits.
    expect(() => powerOf(run({ exitCode: 0, output: "Status: OFF\n" }), "s")).toThrow(/printed no answer Fenceline can read/);
    expect(() => powerOf(run({ exitCode: 0, output: "Chassis Power is on\n" }), "s")).toThrow(/printed no answer/);
    try {
      powerOf(run({ exitCode: 0, output: "hello" }), "s");
    } catch (err) {
      expect(isFenceAgentError(err, FenceErrorCode.UnexpectedOutput)).toBe(true);
    }
  });

  it("accepts Success: Powered OFF and Success: Already OFF for off, and the same for on", () => {
    expect(() => confirmAction(run({ action: "off", exitCode: 0, output: "Success: Powered OFF\n" }), "off", "w")).not.toThrow();
    expect(() => confirmAction(run({ action: "off", exitCode: 0, output: "Success: Already OFF\n" }), "off", "w")).not.toThrow();
    expect(() => confirmAction(run({ action: "on", exitCode: 0, output: "Success: Powered ON\n" }), "on", "w")).not.toThrow();
    expect(() => confirmAction(run({ action: "off", exitCode: 0, output: "Success: Powered ON\n" }), "off", "w")).toThrow(
      /no answer Fenceline can read/,
    );
  });

  it("sees fence_ipmilan's own read-back after the off, and only a read-back that says off", () => {
    const exec = (cmd: string) =>
      `2026-12-04 05:13:27,100 INFO: Executing: /usr/bin/ipmitool -I lanplus -H 127.0.0.1 -p 6230 -U admin -P [set] -C 3 -L ADMINISTRATOR -N 2 chassis power ${cmd}\n`;
    const said = (power: string) => `2026-12-04 05:13:27,300 DEBUG: 0 Chassis Power is ${power}\n`;
    const powered = [
      exec("status"),
      said("on"),
      exec("off"),
      "2026-12-04 05:13:27,500 DEBUG: 0 Chassis Power Control: Down/Off\n",
      exec("status"),
      said("on"),
      exec("status"),
      said("off"),
      "Success: Powered OFF\n",
    ].join("");
    expect(agentReadBackOff(run({ action: "off", exitCode: 0, output: powered }))).toBe(true);
    expect(
      agentReadBackOff(run({ action: "off", exitCode: 0, output: [exec("status"), said("off"), "Success: Already OFF\n"].join("") })),
    ).toBe(true);
    // No read-back after the command (an agent that only sets the power), or one that says on, or no verbose output.
    expect(
      agentReadBackOff(
        run({ action: "off", exitCode: 0, output: [exec("status"), said("off"), exec("off"), "Success: Powered OFF\n"].join("") }),
      ),
    ).toBe(false);
    expect(
      agentReadBackOff(
        run({ action: "off", exitCode: 0, output: [exec("off"), exec("status"), said("on"), "Success: Powered OFF\n"].join("") }),
      ),
    ).toBe(false);
    expect(agentReadBackOff(run({ action: "off", exitCode: 0, output: "Success: Powered OFF\n" }))).toBe(false);
    expect(agentReadBackOff(run({ action: "off", exitCode: 1, output: powered }))).toBe(false);
    expect(agentReadBackOff(run({ action: "on", exitCode: 0, output: powered }))).toBe(false);
  });

  // The messages below are what fence_ipmilan 4.12 with ipmitool 1.8.19 print against ipmi_sim.
  it("tells a refused IPMI login (answered at once) from a BMC that does not answer", () => {
    const refused = failureOf(
      run({
        durationMs: 280,
        output: [
          "2026-12-04 05:13:27,529 INFO: Executing: /usr/bin/ipmitool -I lanplus -H 127.0.0.1 -p 16230 -U admin -P [set] -C 3 -L ADMINISTRATOR -N 2 chassis power status",
          "",
          "2026-12-04 05:13:27,587 DEBUG: 1  Error: Unable to establish IPMI v2 / RMCP+ session",
          "",
          "2026-12-04 05:13:27,615 ERROR: Failed: Unable to obtain correct plug status or plug is not available",
          "",
        ].join("\n"),
      }),
      "fence_ipmilan status for node-1 (device ipmi)",
    );
    expect(refused.code).toBe(FenceErrorCode.Auth);
    expect(refused.message).toContain("the BMC refused the IPMI session at once: wrong user or password");
    expect(refused.message).toContain("Unable to establish IPMI v2 / RMCP+ session");
    expect(refused.message).not.toContain("Executing");
    expect(refused.message).toMatch(
      /\(exit 1 after 280 ms\): Error: Unable to establish IPMI v2 \/ RMCP\+ session \| Failed: Unable to obtain correct plug status/,
    );

    // The agent's own timestamps count, not its whole run (Python starts slowly on a loaded machine).
    const slowStart = failureOf(
      run({
        durationMs: 3_500,
        output:
          "2026-12-04 05:13:30,000 INFO: Executing: ipmitool …\n2026-12-04 05:13:30,060 DEBUG: 1  Error: Unable to establish IPMI v2 / RMCP+ session\n",
      }),
      "w",
    );
    expect(slowStart.code).toBe(FenceErrorCode.Auth);
    const slowTool = failureOf(
      run({
        durationMs: 3_500,
        output:
          "2026-12-04 05:13:30,000 INFO: Executing: ipmitool …\n2026-12-04 05:13:33,100 DEBUG: 1  Error: Unable to establish IPMI v2 / RMCP+ session\n",
      }),
      "w",
    );
    expect(slowTool.code).toBe(FenceErrorCode.Unreachable);
    const silent = failureOf(run({ durationMs: 20_100, output: "INFO: Executing: …\nERROR: Connection timed out\n" }), "w");
    expect(silent.code).toBe(FenceErrorCode.Unreachable);
    const slowSession = failureOf(run({ durationMs: 4_000, output: "Error: Unable to establish IPMI v2 / RMCP+ session\n" }), "w");
    expect(slowSession.code).toBe(FenceErrorCode.Unreachable);
    expect(failureOf(run({ output: "> RAKP 2 HMAC is invalid\n" }), "w").code).toBe(FenceErrorCode.Auth);
    expect(failureOf(run({ output: "ERROR: Failed: Unable to connect/login to fencing device\n" }), "w").code).toBe(FenceErrorCode.Auth);
    expect(failureOf(run({ output: "curl: (7) Failed to connect to 10.0.0.9 port 443: No route to host\n" }), "w").code).toBe(
      FenceErrorCode.Unreachable,
    );
    expect(failureOf(run({ action: "on", output: "ERROR: Failed: Timed out waiting to power ON\n" }), "w").code).toBe(
      FenceErrorCode.Failed,
    );
    expect(failureOf(run({ action: "on", output: "ERROR: Failed: something odd\n" }), "w").code).toBe(FenceErrorCode.Failed);
  });
});
