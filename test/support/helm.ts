import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { loadAllYaml } from "@fenceline/kubernetes";
import { ensureBinary } from "@fenceline/toolchain";

const run = promisify(execFile);

export const CHART = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "charts", "fenceline");

export type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  data?: Record<string, string>;
  spec?: Record<string, unknown>;
};

export type ChartValues = { sets?: string[]; setJsons?: string[] };

/** The command-line flags of these values: `--set …` and `--set-json …`. */
export const valueFlags = (values: ChartValues) => [
  ...(values.sets ?? []).flatMap((s) => ["--set", s]),
  ...(values.setJsons ?? []).flatMap((s) => ["--set-json", s]),
];

/** `helm template RELEASE charts/fenceline -n NAMESPACE --set … --set-json …` (Helm from the toolchain), parsed. */
export async function renderChart(options: ChartValues & { release?: string; namespace?: string } = {}): Promise<Manifest[]> {
  const helm = await ensureBinary("helm");
  const args = ["template", options.release ?? "fenceline", CHART, "--namespace", options.namespace ?? "fenceline", ...valueFlags(options)];
  const { stdout } = await run(helm, args, { maxBuffer: 16 * 1024 * 1024 });
  return (loadAllYaml(stdout) as Manifest[]).filter(Boolean);
}

/**
 * Power fencing as an operator would switch it on: an IPMI device per worker (the password a
 * file of the chart's credentials Secret), the policy's fencing levels power then watchdog.
 */
export const POWER_FENCING_VALUES = {
  sets: ["policy.fencing.fenceAgent=true", "fencing.credentials.data.bmc-password=s3cret"],
  setJsons: [
    `fencing.devices=${JSON.stringify({
      devices: {
        ipmi: {
          agent: "fence_ipmilan",
          params: { lanplus: true, username: "fenceline" },
          password: { file: "/etc/fenceline-fence-credentials/bmc-password" },
          nodes: { "worker-*": { params: { ip: "{node}-bmc.mgmt.example.com" } } },
        },
      },
    })}`,
  ],
} satisfies ChartValues;
