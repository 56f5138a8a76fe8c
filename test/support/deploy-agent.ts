import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadAllYaml } from "@fenceline/kubernetes";

const DEPLOY = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "deploy");

/** The agent configuration deploy/ ships: one file for every node, with placeholders. */
export const DEPLOY_AGENT_CONFIG = join(DEPLOY, "agent.json");

type Container = { name: string; command?: string[]; env?: Array<{ name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }> };

/** The DaemonSet's init container that renders the config on each node. */
function deployConfigInitContainer(): Container {
  const manifests = loadAllYaml(readFileSync(join(DEPLOY, "agent.yaml"), "utf8")) as Array<{
    kind: string;
    spec?: { template: { spec: { initContainers?: Container[] } } };
  }>;
  const daemonSet = manifests.find((m) => m.kind === "DaemonSet");
  const init = daemonSet?.spec?.template.spec.initContainers?.find((c) => c.name === "config");
  if (!init?.command) throw new Error("deploy/agent.yaml has no config init container");
  return init;
}

/**
 * The agent configuration exactly as the DaemonSet renders it on a node: the init container's
 * own shell command, run with `sh` on deploy/agent.json, with the node's name and address in the
 * environment the pod gives it (spec.nodeName, status.hostIP). Only the two paths it reads and
 * writes are pointed at temporary files.
 */
export function renderAsDeployed(node: { name: string; ip: string }): string {
  const init = deployConfigInitContainer();
  const [shell, flag, script] = init.command!;
  if (shell !== "sh" || flag !== "-c" || script === undefined) throw new Error(`unexpected init command ${JSON.stringify(init.command)}`);
  const dir = mkdtempSync(join(tmpdir(), "fl-render-"));
  try {
    const input = join(dir, "in.json");
    const output = join(dir, "out.json");
    writeFileSync(input, readFileSync(DEPLOY_AGENT_CONFIG));
    const local = script.replaceAll("/config/agent.json", input).replaceAll("/run/fenceline/agent.json", output);
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
    for (const e of init.env ?? []) {
      const field = e.valueFrom?.fieldRef?.fieldPath;
      if (field === "spec.nodeName") env[e.name] = node.name;
      else if (field === "status.hostIP") env[e.name] = node.ip;
      else throw new Error(`the init container reads ${e.name} from ${field ?? "?"}, which this renderer does not know`);
    }
    execFileSync("sh", ["-c", local], { env });
    return readFileSync(output, "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
