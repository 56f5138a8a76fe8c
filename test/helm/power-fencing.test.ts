import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startIpmiSimBmc, type IpmiSimBmc } from "@fenceline/sim";
import { oneJsonDocument, runCli } from "../e2e/cli.js";
import { renderChart, type Manifest } from "../support/helm.js";

/**
 * The chart's power fencing wired end to end, without a cluster: the devices ConfigMap and the
 * credentials Secret the chart renders are laid out as files the way the kubelet mounts the
 * engine's volumes (one file per key, under each volumeMount's path, here below a temporary
 * root), and the engine's own --fence-devices argument is run by `fenceline fence-check`
 * through the real fence_ipmilan against ipmi_sim BMCs.
 */
let root: string;
const bmcs: IpmiSimBmc[] = [];
const power: Record<string, "on" | "off"> = { "worker-1": "on", "worker-2": "off", "worker-3": "on" };
const PASSWORD = "chartbmc01234567"; // IPMI passwords: at most 16 characters here

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "fl-chart-fencing-"));
  for (const name of Object.keys(power)) {
    bmcs.push(
      await startIpmiSimBmc({
        name,
        password: PASSWORD,
        machine: { power: () => power[name]!, setPower: async (on) => void (power[name] = on ? "on" : "off") },
      }),
    );
  }
});
afterAll(async () => {
  await Promise.all(bmcs.map((b) => b.stop()));
  await rm(root, { recursive: true, force: true });
});

type Container = { args: string[]; volumeMounts: Array<{ name: string; mountPath: string }> };
type Volume = { name: string; configMap?: { name: string }; secret?: { secretName: string } };

/** Where the kubelet would put each of the engine container's volumes, below `root`; returns the engine's arguments with its paths moved there too. */
async function mountEngineVolumes(objects: Manifest[]): Promise<string[]> {
  const pod = (objects.find((o) => o.kind === "Deployment")!.spec!.template as { spec: { containers: Container[]; volumes: Volume[] } })
    .spec;
  const [engine] = pod.containers;
  const moved = (text: string) => engine!.volumeMounts.reduce((t, m) => t.replaceAll(`${m.mountPath}/`, `${root}${m.mountPath}/`), text);
  for (const mount of engine!.volumeMounts) {
    const volume = pod.volumes.find((v) => v.name === mount.name)!;
    const source = volume.configMap
      ? objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === volume.configMap!.name)!.data!
      : Object.fromEntries(
          Object.entries(objects.find((o) => o.kind === "Secret" && o.metadata.name === volume.secret!.secretName)!.data!).map(([k, v]) => [
            k,
            Buffer.from(v, "base64").toString(),
          ]),
        );
    await mkdir(join(root, mount.mountPath), { recursive: true });
    for (const [key, value] of Object.entries(source))
      await writeFile(join(root, mount.mountPath, key), volume.configMap ? moved(value) : value, { mode: 0o440 });
  }
  return engine!.args.map(moved);
}

describe("charts/fenceline power fencing with the real fence_ipmilan", () => {
  it("the engine's --fence-devices, the devices ConfigMap and the credentials Secret reach every BMC; a key holding a retired password is a refused login", async () => {
    const [b1, b2, b3] = bmcs as [IpmiSimBmc, IpmiSimBmc, IpmiSimBmc];
    const devices = {
      devices: {
        ipmi: {
          agent: "fence_ipmilan",
          params: { lanplus: true, cipher: 3, username: "admin", power_wait: 0 },
          password: { file: "/etc/fenceline-fence-credentials/bmc-password" },
          nodes: {
            "worker-1": { params: { ip: b1.host, ipport: b1.port } },
            "worker-2": { params: { ip: b2.host, ipport: b2.port } },
            // Another key of the same Secret: a password the BMC no longer takes.
            "worker-3": { params: { ip: b3.host, ipport: b3.port }, password: { file: "/etc/fenceline-fence-credentials/old-password" } },
          },
          retries: 0,
        },
      },
    };
    const objects = await renderChart({
      sets: [
        "policy.fencing.fenceAgent=true",
        `fencing.credentials.data.bmc-password=${PASSWORD}`,
        "fencing.credentials.data.old-password=retired-password",
      ],
      setJsons: [`fencing.devices=${JSON.stringify(devices)}`],
    });
    const args = await mountEngineVolumes(objects);
    const devicesArg = args.find((a) => a.startsWith("--fence-devices="))!;
    expect(devicesArg).toBe(`--fence-devices=${root}/etc/fenceline-fence-devices/devices.json`);

    const result = await runCli(["fence-check", devicesArg, "--json"]);
    const answers = oneJsonDocument<{ answers: Array<Record<string, unknown>> }>(result).answers;
    expect(answers.find((a) => a.node === "worker-1")).toMatchObject({ device: "ipmi", ok: true, power: "on" });
    expect(answers.find((a) => a.node === "worker-2")).toMatchObject({ device: "ipmi", ok: true, power: "off" });
    expect(answers.find((a) => a.node === "worker-3")).toMatchObject({ device: "ipmi", ok: false, error: "auth" });
    expect(result.code).toBe(1);
    expect(result.stdout + result.stderr).not.toContain(PASSWORD);
    expect(result.stdout + result.stderr).not.toContain("retired-password");
    // A check changes no power state.
    expect(bmcs.flatMap((b) => b.powerChanges)).toEqual([]);
  });
});
