import { spawn } from "node:child_process";
import type { Provisioner } from "@fenceline/contracts";

export type ProvisionCommands = {
  /** Shell commands; `{node}` and `{hostGroup}` are replaced, and also set as FENCELINE_NODE / FENCELINE_HOST_GROUP. */
  cleanup: string;
  provision: string;
  timeoutMs?: number;
};

const OUTPUT_LIMIT = 64 * 1024;

/**
 * Runs the configured cleanup and provision commands (for example
 * `ansible-playbook cleanup.yml --limit {node}` and `ansible-playbook site.yml --limit {node}`).
 */
export function createCommandProvisioner(commands: ProvisionCommands): Provisioner {
  const timeoutMs = commands.timeoutMs ?? 600_000;
  return {
    run(step, node, hostGroup) {
      const template = step === "cleanup" ? commands.cleanup : commands.provision;
      const line = template.replaceAll("{node}", node).replaceAll("{hostGroup}", hostGroup);
      return new Promise((resolve) => {
        const child = spawn("/bin/sh", ["-c", line], {
          env: { ...process.env, FENCELINE_NODE: node, FENCELINE_HOST_GROUP: hostGroup, FENCELINE_STEP: step },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let output = "";
        const collect = (chunk: Buffer) => {
          output = (output + chunk.toString("utf8")).slice(-OUTPUT_LIMIT);
        };
        child.stdout.on("data", collect);
        child.stderr.on("data", collect);
        const timer = setTimeout(() => {
          output += `\n[killed after ${timeoutMs} ms]`;
          child.kill("SIGKILL");
        }, timeoutMs);
        child.on("error", (err) => {
          clearTimeout(timer);
          resolve({ ok: false, output: `${output}\ncannot run ${line}: ${err.message}` });
        });
        child.on("close", (code, signal) => {
          clearTimeout(timer);
          resolve({ ok: code === 0, output: code === 0 ? output : `${output}\n[${line}: exit ${code ?? signal}]` });
        });
      });
    },
  };
}
