import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseAgentConfig, renderAgentConfig } from "@fenceline/agent";
import { LAB_AGENT_CONFIG, LAB_POLICY, labAgentConfigs, runSeed } from "../../src/index.js";
import { DEPLOY_AGENT_CONFIG } from "../../../../test/support/deploy-agent.js";

const deployed = readFileSync(DEPLOY_AGENT_CONFIG, "utf8");
const node = { name: "node-3", ip: "10.77.0.4" };

describe("the lab's agents are configured as deploy/ configures them", () => {
  it("the lab's default agent configuration is deploy/agent.json with the lab policy's timing, and nothing else changed", () => {
    const lab = parseAgentConfig(JSON.parse(renderAgentConfig(LAB_AGENT_CONFIG, node)));
    const shipped = parseAgentConfig(JSON.parse(renderAgentConfig(deployed, node)));
    expect(lab.timing).toEqual(LAB_POLICY.agent);
    expect(lab.heartbeatIntervalMs).toBe(LAB_POLICY.heartbeat.intervalMs);
    expect({ ...lab, timing: shipped.timing, heartbeatIntervalMs: shipped.heartbeatIntervalMs }).toEqual(shipped);
    expect(labAgentConfigs(LAB_AGENT_CONFIG)("node-3")).toEqual(lab);
  });

  it("every agent learns the fleet from the control plane: its view lists every machine, none was given one", async () => {
    const r = await runSeed(4, { kinds: ["network-loss"], faults: 1, nodes: 5, keep: true, growth: false });
    expect(r.failures).toEqual([]);
    const views = (r.trail ?? []).filter((l) => l.what.startsWith("membership view"));
    expect(views[0]?.what).toMatch(/^membership view v1: /);
    expect(views.at(-1)?.what).toBe("membership view v" + views.length + ": node-1, node-2, node-3, node-4, node-5");
  });

  it("runs deploy/agent.json as shipped with a policy of the same timing", async () => {
    const shippedPolicy = {
      ...LAB_POLICY,
      heartbeat: { ...LAB_POLICY.heartbeat, intervalMs: 1_000, timeoutMs: 3_000 },
      agent: { controlPlaneTimeoutMs: 5_000, peerRoundMs: 2_000, watchdogTimeoutMs: 10_000, marginMs: 5_000 },
    };
    const r = await runSeed(2, { kinds: ["network-loss", "crash"], faults: 2, agentConfig: deployed, policy: shippedPolicy });
    expect(r.failures).toEqual([]);
    expect(r.convergedAtMs).not.toBeNull();
  });
});
