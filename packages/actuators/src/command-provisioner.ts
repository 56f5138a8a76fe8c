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
 * What may be substituted into a shell command line: no shell metacharacters. The host group
 * comes from the node's own heartbeat, so it must never be able to inject a command.
 */
const SAFE_VALUE = /^[A-Za-z0-9._:/@+=,-]*$/;

/**
 * Runs the configured cleanup and provision commands (for example
 * `ansible-playbook cleanup.yml --limit {node}` and `ansible-playbook site.yml --limit {node}`).
 */
export function createCommandProvisioner(commands: ProvisionCommands): Provisioner {
  const timeoutMs = commands.timeoutMs ?? 600_000;
  return {
    run(step, node, hostGroup) {
      const template = step === "cleanup" ? commands.cleanup : commands.provision;
      for (const [name, value] of [
        ["node", node],
        ["host group", hostGroup],
      ] as const) {
        if (!SAFE_VALUE.test(value)) {
          return Promise.resolve({
            ok: false,
            output: `refused to run ${step}: ${name} ${JSON.stringify(value)} contains characters that are unsafe in a shell command`,
          });
        }
      }
      const line = template.replaceAll("{node}", node).replaceAll("{hostGroup}", hostGroup);
      return new Promise((resolve) => {
        const child = spawn("/bin/sh", ["-c", line], {
          env: { ...process.env, FENCELINE_NODE: node, FENCELINE_HOST_GROUP: hostGroup, FENCELINE_STEP: step },
          stdio: ["ignore", "pipe", "pipe"],
          // Its own process group, so a timeout kills everything the shell started, not only the shell.
          detached: true,
        });
        let output = "";
        const collect = (chunk: Buffer) => {
          output = (output + chunk.toString("utf8")).slice(-OUTPUT_LIMIT);
        };
        child.stdout.on("data", collect);
        child.stderr.on("data", collect);
        const timer = setTimeout(() => {
          output += `\n[killed after ${timeoutMs} ms]`;
          try {
            if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
            else child.kill("SIGKILL");
          } catch {
            child.kill("SIGKILL");
          }
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
