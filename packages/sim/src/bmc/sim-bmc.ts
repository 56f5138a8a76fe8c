import type { Clock } from "@fenceline/contracts";
import type { FenceAgentRun, FenceDevicesConfig, RunFenceAgentOptions } from "@fenceline/actuators";
import type { PoweredMachine } from "./ipmi-sim-bmc.js";

/** Faults of a simulated BMC (a BMC that lies about the power state is out of scope). */
export type SimBmcFault = "unreachable" | "slow" | "wrong-credentials" | "power-on-fails";
export const SIM_BMC_FAULTS: readonly SimBmcFault[] = ["unreachable", "slow", "wrong-credentials", "power-on-fails"];

/**
 * How long things take, in ms ([min, max], drawn uniformly). The defaults are a real server's
 * BMC as fence_ipmilan meets it: Python starting the agent, an IPMI-over-LAN session per
 * ipmitool call (RMCP+ open, RAKP, the command: 0.3–1.5 s on a server BMC; 0.1 s against
 * ipmi_sim on loopback), and a chassis power-off that the BMC reports a few seconds later.
 */
export type SimBmcTiming = {
  agentStartMs: [number, number];
  sessionMs: [number, number];
  /** From the BMC accepting `chassis power off` to the power state reading off. */
  powerOffMs: [number, number];
  powerOnMs: [number, number];
  /** Extra delay of a `slow` BMC's power changes. */
  slowMs: [number, number];
};
export const REAL_BMC_TIMING: SimBmcTiming = {
  agentStartMs: [200, 400],
  sessionMs: [300, 1_500],
  powerOffMs: [500, 3_000],
  powerOnMs: [500, 3_000],
  slowMs: [5_000, 15_000],
};

export const SIM_BMC_PASSWORD = "sim-bmc-password";
const IP_PREFIX = "bmc-";

/**
 * The fence devices file of a simulated fleet: one fence_ipmilan device whose `ip` names the
 * node's simulated BMC. The same configuration schema, adapter, retries and output reading as
 * production run on it; only the process is simulated.
 */
export function simBmcDevices(
  options: {
    nodes?: readonly string[];
    timeoutMs?: number;
    retries?: number;
    retryDelayMs?: number;
    confirmWithinMs?: number;
    pollMs?: number;
  } = {},
): FenceDevicesConfig {
  return {
    devices: {
      ipmi: {
        agent: "fence_ipmilan",
        params: { ip: `${IP_PREFIX}{node}`, username: "admin", lanplus: "1", cipher: "3", power_wait: "0" },
        password: { env: "FENCELINE_SIM_BMC_PASSWORD" },
        secrets: {},
        hostGroups: {},
        // Only these machines have a BMC (default: every one).
        nodes: Object.fromEntries((options.nodes ?? []).map((n) => [n, { params: {}, secrets: {} }])),
        timeoutMs: options.timeoutMs ?? 10_000,
        retries: options.retries ?? 1,
        retryDelayMs: options.retryDelayMs ?? 1_000,
        confirmWithinMs: options.confirmWithinMs ?? 10_000,
        pollMs: options.pollMs ?? 500,
      },
    },
  };
}

type Bmc = { faults: Set<SimBmcFault>; pending: unknown };

/**
 * Simulated BMCs behind a simulated fence_ipmilan: a replacement for the process runner that
 * prints what fence_ipmilan 4.12 prints against a BMC (as measured against ipmi_sim:
 * `Status: ON` / exit 0, `Status: OFF` / exit 2, `Success: Powered OFF`, `Connection timed out`
 * after power_timeout for a BMC that does not answer, "Unable to establish IPMI v2 / RMCP+
 * session" at once for wrong credentials, a refused power-on waited for until power_timeout),
 * on the injected clock, powering the fleet's machines off and on.
 */
export function createSimBmcs(options: {
  clock: Clock;
  random: () => number;
  machine: (node: string) => PoweredMachine | undefined;
  timing?: SimBmcTiming;
}) {
  const { clock, random } = options;
  const timing = options.timing ?? REAL_BMC_TIMING;
  const bmcs = new Map<string, Bmc>();
  const bmc = (node: string) => {
    let b = bmcs.get(node);
    if (!b) bmcs.set(node, (b = { faults: new Set(), pending: undefined }));
    return b;
  };
  const draw = ([min, max]: [number, number]) => min + Math.floor(random() * (max - min + 1));
  const sleep = (ms: number) => new Promise<void>((resolve) => clock.setTimeout(resolve, ms));
  /** Power changes the BMCs carried out, in order. */
  const powerChanges: { at: number; node: string; to: "on" | "off" }[] = [];

  const stamp = () => {
    const d = new Date(clock.now());
    return `${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 19)},${String(d.getUTCMilliseconds()).padStart(3, "0")}`;
  };

  const run = async (o: RunFenceAgentOptions): Promise<FenceAgentRun> => {
    const started = clock.now();
    const node = (o.params.ip ?? "").startsWith(IP_PREFIX) ? o.params.ip!.slice(IP_PREFIX.length) : "";
    const machine = options.machine(node);
    const b = bmc(node);
    const powerTimeoutMs = Number(o.params.power_timeout ?? "20") * 1_000;
    const powerWaitMs = Number(o.params.power_wait ?? "2") * 1_000;
    const lines: string[] = [];
    const log = (level: string, text: string) => lines.push(`${stamp()} ${level}: ${text}`, "");
    const killAt = started + o.timeoutMs;
    // Killed (its process group): nothing it had not done yet happens.
    let dead = false;
    const wait = async (ms: number) => {
      await sleep(ms);
      if (dead) throw new Error("killed");
    };

    /** One ipmitool call: an IPMI session, then the command; null when the session failed. */
    const ipmitool = async (command: string): Promise<boolean> => {
      log(
        "INFO",
        `Executing: /usr/bin/ipmitool -I lanplus -H ${o.params.ip} -p 623 -U ${o.params.username ?? ""} -P [set] -C 3 -L ADMINISTRATOR -N 2 chassis power ${command}`,
      );
      if (!machine || b.faults.has("unreachable")) {
        // ipmitool waits and retries; fencing.py kills it after power_timeout.
        await wait(powerTimeoutMs);
        log("ERROR", "Connection timed out");
        throw new Error("unreachable");
      }
      if (b.faults.has("wrong-credentials") || o.secrets?.password !== SIM_BMC_PASSWORD) {
        await wait(Math.min(100, draw(timing.sessionMs)));
        log("DEBUG", "1  Error: Unable to establish IPMI v2 / RMCP+ session");
        return false;
      }
      await wait(draw(timing.sessionMs));
      return true;
    };
    const readPower = async (): Promise<"on" | "off" | null> => {
      if (!(await ipmitool("status"))) return null;
      const power = machine!.power();
      log("DEBUG", `0 Chassis Power is ${power}`);
      return power;
    };
    /**
     * The BMC carries the change out after its delay (a slow BMC takes much longer); a newer
     * request replaces one it has not carried out yet.
     */
    const schedule = (to: "on" | "off") => {
      const delay = draw(to === "off" ? timing.powerOffMs : timing.powerOnMs) + (b.faults.has("slow") ? draw(timing.slowMs) : 0);
      clock.clearTimeout(b.pending);
      b.pending = clock.setTimeout(() => {
        b.pending = undefined;
        if (machine!.power() === to) return;
        powerChanges.push({ at: clock.now(), node, to });
        void machine!.setPower(to === "on");
      }, delay);
    };

    const agent = (async () => {
      await wait(draw(timing.agentStartMs));
      const power = await readPower();
      if (power === null) {
        log("ERROR", "Failed: Unable to obtain correct plug status or plug is not available");
        return 1;
      }
      if (o.action === "status" || o.action === "monitor") {
        if (o.action === "status") lines.push(`Status: ${power.toUpperCase()}`);
        return power === "off" && o.action === "status" ? 2 : 0;
      }
      const want = o.action;
      if (power === want) {
        lines.push(`Success: Already ${want.toUpperCase()}`);
        return 0;
      }
      if (!(await ipmitool(want))) return 1;
      if (want === "on" && b.faults.has("power-on-fails")) {
        log("DEBUG", "1  Set Chassis Power Control to Up/On failed: Unspecified error");
      } else {
        log("DEBUG", `0 Chassis Power Control: ${want === "off" ? "Down/Off" : "Up/On"}`);
        schedule(want);
      }
      await wait(powerWaitMs);
      const until = clock.now() + powerTimeoutMs;
      for (;;) {
        const now = await readPower();
        if (now === want) {
          lines.push(`Success: Powered ${want.toUpperCase()}`);
          return 0;
        }
        if (clock.now() >= until) {
          log("ERROR", `Failed: Timed out waiting to power ${want.toUpperCase()}`);
          return 1;
        }
        await wait(1_000);
      }
    })().catch(() => 1);

    // The runner's kill: whatever the agent did not finish by then is cut off.
    let killTimer: unknown;
    const killed = new Promise<"killed">((resolve) => {
      killTimer = clock.setTimeout(() => {
        dead = true;
        resolve("killed");
      }, o.timeoutMs);
    });
    const outcome = await Promise.race([agent, killed]);
    clock.clearTimeout(killTimer);
    if (outcome === "killed") {
      return { action: o.action, exitCode: null, output: lines.join("\n"), durationMs: killAt - started, timedOut: true };
    }
    return { action: o.action, exitCode: outcome, output: lines.join("\n"), durationMs: clock.now() - started, timedOut: false };
  };

  return {
    run,
    powerChanges,
    setFault(node: string, fault: SimBmcFault, on: boolean) {
      if (on) bmc(node).faults.add(fault);
      else bmc(node).faults.delete(fault);
    },
    faultsOf: (node: string) => [...bmc(node).faults],
  };
}
export type SimBmcs = ReturnType<typeof createSimBmcs>;
