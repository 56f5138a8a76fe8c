import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startIpmiSimBmc, type IpmiSimBmc } from "@fenceline/sim";
import { oneJsonDocument, runCli } from "../e2e/cli.js";

let dir: string;
const bmcs: IpmiSimBmc[] = [];
const power: Record<string, "on" | "off"> = { "node-1": "on", "node-2": "off", "node-3": "on" };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "fl-fence-check-"));
  for (const name of Object.keys(power)) {
    bmcs.push(
      await startIpmiSimBmc({
        name,
        machine: { power: () => power[name]!, setPower: async (on) => void (power[name] = on ? "on" : "off") },
      }),
    );
  }
  await writeFile(join(dir, "wrong"), "wrong-password\n");
});
afterAll(async () => {
  await Promise.all(bmcs.map((b) => b.stop()));
  await rm(dir, { recursive: true, force: true });
});

describe("fenceline fence-check", () => {
  it("reads every configured node's power state and says clearly which BMC refused the login", async () => {
    const [b1, b2, b3] = bmcs as [IpmiSimBmc, IpmiSimBmc, IpmiSimBmc];
    const devices = {
      devices: {
        ipmi: {
          agent: "fence_ipmilan",
          params: { lanplus: true, cipher: 3, username: "admin", power_wait: 0 },
          nodes: {
            "node-1": { params: { ip: b1.host, ipport: b1.port }, password: { file: b1.passwordFile } },
            "node-2": { params: { ip: b2.host, ipport: b2.port }, password: { file: b2.passwordFile } },
            "node-3": { params: { ip: b3.host, ipport: b3.port }, password: { file: join(dir, "wrong") } },
          },
          retries: 0,
        },
      },
    };
    const file = join(dir, "devices.json");
    await writeFile(file, JSON.stringify(devices));

    const human = await runCli(["fence-check", "--fence-devices", file]);
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/node-1\s+ipmi\s+on\s+[\d.]+ s/);
    expect(human.stdout).toMatch(/node-2\s+ipmi\s+off\s+[\d.]+ s/);
    expect(human.stdout).toMatch(
      /node-3\s+ipmi\s+ERROR auth\s+[\d.]+ s\s+fence_ipmilan status for node-3 \(device ipmi\): the BMC refused the IPMI session at once: wrong user or password/,
    );
    expect(human.stdout).toContain("2 of 3 answered; 1 did not");
    expect(human.stdout + human.stderr).not.toContain("wrong-password");

    const json = await runCli(["fence-check", "--fence-devices", file, "--json", "--node", "node-1", "--node", "node-9"]);
    expect(json.code).toBe(0);
    const parsed = oneJsonDocument<{ answers: Array<Record<string, unknown>>; uncovered: string[] }>(json);
    expect(parsed.answers).toEqual([{ node: "node-1", device: "ipmi", durationMs: expect.any(Number), ok: true, power: "on" }]);
    expect(parsed.uncovered).toEqual(["node-9"]);
    // Nothing was powered off or on by a check.
    expect(power).toEqual({ "node-1": "on", "node-2": "off", "node-3": "on" });
    expect(bmcs.flatMap((b) => b.powerChanges)).toEqual([]);
  });

  it("refuses a devices file with an inline password, naming the problem", async () => {
    const file = join(dir, "inline.json");
    await writeFile(file, JSON.stringify({ devices: { ipmi: { agent: "fence_ipmilan", params: { password: "x" } } } }));
    const r = await runCli(["fence-check", "--fence-devices", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("invalid fence devices");
    expect(r.stderr).toContain("never inline in params");
  });
});

describe("fenceline up: the policy's fencing levels and the devices file are checked against each other", () => {
  it("refuses power levels without --fence-devices, and a level naming a device the file does not define", async () => {
    const policy = join(dir, "levels.json");
    await writeFile(policy, JSON.stringify({ fencing: { levels: [["ipmi"], ["pdu-a"], ["watchdog"]] } }));
    const none = await runCli(["up", "--policy", policy, "--server", "nats://127.0.0.1:1"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain(
      "the policy's fencing levels power nodes off (a level names a fence device or power) but no --fence-devices file was given",
    );
    const devices = join(dir, "ipmi-only.json");
    await writeFile(
      devices,
      JSON.stringify({ devices: { ipmi: { agent: "fence_ipmilan", nodes: { "node-1": { params: { ip: "127.0.0.1" } } } } } }),
    );
    const missing = await runCli(["up", "--policy", policy, "--fence-devices", devices, "--server", "nats://127.0.0.1:1"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`the policy's fencing levels name pdu-a, which ${devices} does not define (devices: ipmi)`);
  });
});
