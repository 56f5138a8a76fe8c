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

/** `helm template RELEASE charts/fenceline -n NAMESPACE --set …` (Helm from the toolchain), parsed. */
export async function renderChart(options: { sets?: string[]; release?: string; namespace?: string } = {}): Promise<Manifest[]> {
  const helm = await ensureBinary("helm");
  const args = ["template", options.release ?? "fenceline", CHART, "--namespace", options.namespace ?? "fenceline", ...(options.sets ?? []).flatMap((s) => ["--set", s])];
  const { stdout } = await run(helm, args, { maxBuffer: 16 * 1024 * 1024 });
  return (loadAllYaml(stdout) as Manifest[]).filter(Boolean);
}
