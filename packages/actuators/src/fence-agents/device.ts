import { systemClock, type Clock, type FenceAgent, type FenceAnswer, type FenceTarget } from "@fenceline/contracts";
import { resolveTarget, type FenceDeviceConfig } from "./config.js";
import { FenceAgentError, FenceErrorCode, RETRYABLE, isFenceAgentError } from "./errors.js";
import { agentReadBackOff, confirmAction, powerOf } from "./interpret.js";
import { runFenceAgent, type FenceAction, type FenceAgentRun } from "./run-fence-agent.js";
import type { SecretReader } from "./secrets.js";

/** A named fence device: the port, and how long to read the power state back after `off`. */
export type FenceDevice = {
  name: string;
  agent: FenceAgent;
  confirmWithinMs: number;
  pollMs: number;
};

export type FenceAgentDeviceOptions = {
  readSecret: SecretReader;
  /** Replaces the process runner (tests, and the simulator's BMCs). */
  run?: typeof runFenceAgent;
  /** Deadlines and retry delays (default: the system clock; the simulator's is virtual). */
  clock?: Clock;
};

/**
 * Parameters every agent of the standard library takes, set unless the configuration does:
 * `verbose`, because without it a refused login and an unreachable device print the same
 * "Unable to obtain correct plug status"; `power_timeout` (default 20 s: how long the agent waits
 * for the power state to change, and for each tool it runs) inside our own timeout, so the agent
 * reports what happened instead of being killed (3 s or a fifth of ours are left for Python to
 * start and the agent to report); and `retry_on` 0 (default 1: a refused power-on
 * is waited for twice), since the device retries whole runs itself.
 */
function agentDefaults(timeoutMs: number): Record<string, string> {
  return {
    verbose: "1",
    power_timeout: String(Math.max(1, Math.floor(Math.min(timeoutMs * 0.8, timeoutMs - 3_000) / 1_000))),
    retry_on: "0",
  };
}

const seconds = (ms: number) => `${(ms / 1_000).toFixed(1)} s`;

function header(agent: string, run: FenceAgentRun, attempt: number, attempts: number): string {
  const how = run.timedOut ? `killed after ${seconds(run.durationMs)}` : `exit ${run.exitCode} after ${seconds(run.durationMs)}`;
  return `# ${agent} ${run.action}${attempts > 1 ? ` (attempt ${attempt}/${attempts})` : ""}: ${how}`;
}

/**
 * The production FenceAgent: a ClusterLabs fence agent run per action, with the device's
 * parameters for the node on stdin, each run killed after `timeoutMs`, and unreachable,
 * timed-out or failed runs retried `retries` times `retryDelayMs` apart, never past the
 * caller's deadline. A refused login is not retried: it will not get better, and BMCs lock
 * accounts after a few bad logins.
 */
export function createFenceAgentDevice(name: string, given: FenceDeviceConfig, options: FenceAgentDeviceOptions): FenceDevice {
  const run = options.run ?? runFenceAgent;
  const clock = options.clock ?? systemClock;
  const config = given;
  /** The device with the agent's defaults for a run of `timeoutMs` under its own parameters (which win). */
  const withDefaults = (timeoutMs: number): FenceDeviceConfig => ({ ...config, params: { ...agentDefaults(timeoutMs), ...config.params } });

  async function attempt(action: FenceAction, target: FenceTarget, read: (r: FenceAgentRun, what: string) => void): Promise<FenceAnswer> {
    const what = `${config.agent} ${action} for ${target.node} (device ${name})`;
    const resolved = resolveTarget(withDefaults(config.timeoutMs), target.node, target.hostGroup);
    if (!resolved)
      throw new FenceAgentError(
        FenceErrorCode.InvalidConfig,
        `${what}: the device has no entry for this node${target.hostGroup ? ` or its host group ${target.hostGroup}` : ""}`,
      );
    const secrets: Record<string, string> = {};
    for (const [param, source] of Object.entries(resolved.secrets)) secrets[param] = await options.readSecret(source);
    const attempts = config.retries + 1;
    const outputs: string[] = [];
    for (let i = 1; ; i++) {
      const left = target.deadline === undefined ? Infinity : target.deadline - clock.now();
      const timeoutMs = Math.max(1, Math.min(config.timeoutMs, left));
      // A run cut short by the deadline gets the agent's own waits shortened to match.
      const params =
        timeoutMs === config.timeoutMs ? resolved.params : resolveTarget(withDefaults(timeoutMs), target.node, target.hostGroup)!.params;
      const result = await run({ agent: config.agent, action, params, secrets, timeoutMs });
      outputs.push(`${header(config.agent, result, i, attempts)}\n${result.output.trimEnd()}`);
      try {
        read(result, what);
        return { output: outputs.join("\n") };
      } catch (err) {
        if (!isFenceAgentError(err)) throw err;
        const wait = config.retryDelayMs;
        const timeLeft = target.deadline === undefined ? Infinity : target.deadline - clock.now() - wait;
        if (!RETRYABLE.has(err.code) || i >= attempts || timeLeft <= 0) {
          const tried = i > 1 ? ` (${i} attempts)` : "";
          throw new FenceAgentError(err.code, `${err.message}${tried}`, outputs.join("\n"));
        }
        await new Promise<void>((resolve) => clock.setTimeout(resolve, wait));
      }
    }
  }

  const agent: FenceAgent = {
    covers: (node, hostGroup) => resolveTarget(config, node, hostGroup) !== null,
    async powerOff(target) {
      let readBack = false;
      const { output } = await attempt("off", target, (r, what) => {
        confirmAction(r, "off", what);
        readBack = agentReadBackOff(r);
      });
      return readBack ? { output, power: "off" as const } : { output };
    },
    async powerOn(target) {
      const { output } = await attempt("on", target, (r, what) => confirmAction(r, "on", what));
      return { output };
    },
    async status(target) {
      let power: "on" | "off" = "on";
      const { output } = await attempt("status", target, (r, what) => {
        power = powerOf(r, what);
      });
      return { output, power };
    },
  };
  return { name, agent, confirmWithinMs: config.confirmWithinMs, pollMs: config.pollMs };
}
