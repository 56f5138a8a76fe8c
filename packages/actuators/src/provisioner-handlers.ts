import type { Provisioner } from "@fenceline/contracts";
import type { Handlers } from "./actuator.js";

/** Re-provisioning: cleanup, then provision by host group; output of both kept in the result. */
export function createProvisionerHandlers(provisioner: Provisioner): Handlers {
  return {
    reprovision: async (c, context) => {
      const { hostGroup } = c.params;
      const cleanup = await provisioner.run("cleanup", c.node, hostGroup);
      context.progress();
      if (!cleanup.ok) return { ok: false, reason: "cleanup failed", output: `# cleanup\n${cleanup.output}` };
      const provision = await provisioner.run("provision", c.node, hostGroup);
      const output = `# cleanup\n${cleanup.output}\n# provision (${hostGroup})\n${provision.output}`;
      return provision.ok ? { ok: true, output } : { ok: false, reason: "provision failed", output };
    },
  };
}
