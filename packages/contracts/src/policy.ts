import { z } from "zod";
import { Duration, formatMs } from "./duration.js";

/**
 * `maxUnhealthy` / `minHealthy`: a node count ("3" or 3) or a percentage of the fleet ("40%").
 * Percentages of `maxUnhealthy` round down and of `minHealthy` round up, so both err on the
 * side of remediating less (Cluster API's rounding, not Node Health Check's).
 */
export const FleetLimit = z.union([
  z.number().int().nonnegative(),
  z.string().regex(/^\d+%?$/, 'a count like 3 or a percentage like "40%"'),
]);
export type FleetLimit = z.infer<typeof FleetLimit>;

export const Strategy = z.enum(["Automatic", "ResourceDeletion", "OutOfServiceTaint"]);
export type Strategy = z.infer<typeof Strategy>;

/** The agent settings the safe time depends on (the agent must run with the same values). */
export const AgentTiming = z
  .object({
    /** How long the agent may lose the control plane (NATS) before it asks its peers. */
    controlPlaneTimeoutMs: Duration.default(5_000),
    /** How long one round of peer questions may take, all peers asked in parallel. */
    peerRoundMs: Duration.default(2_000),
    /** The watchdog's timeout: a node that stops feeding it is reset after this long. */
    watchdogTimeoutMs: Duration.default(10_000),
    /** Covers message latency, scheduling delays and clock-rate drift. */
    marginMs: Duration.default(5_000),
  })
  .strict();
export type AgentTiming = z.infer<typeof AgentTiming>;

/** The node's own watchdog (watchdog.stop, then its timeout; or the safe time of a silent node). */
export const WATCHDOG_METHOD = "watchdog";
/** Every fence device configured for the node (`fenceline up --fence-devices`), all of them. */
export const POWER_METHOD = "power";
/** A fencing method: `watchdog`, `power`, or the name of a fence device (ipmi, pdu-a…). */
export const FenceMethod = z
  .string()
  .regex(/^[a-z][a-z0-9-]*$/, "a method: watchdog, power, or a fence device name (lower case, digits, -)");

/**
 * One fencing level, as in Pacemaker's fencing topology: methods that must all succeed (`[ipmi]`,
 * `[pdu-a, pdu-b]`, `[watchdog]`). Written as a list of methods, or with its own timeout.
 */
const FenceLevelInput = z.union([
  z.array(FenceMethod).min(1),
  z.object({ methods: z.array(FenceMethod).min(1), timeoutMs: Duration.optional() }).strict(),
]);
/** Levels are tried in order, at most 9 (as Pacemaker's). */
const FenceLevelsInput = z.array(FenceLevelInput).min(1).max(9);
export type FenceLevel = { methods: string[]; timeoutMs: number };

/** A level's default timeout: a minute for power devices (Pacemaker's stonith-timeout); a watchdog level waits on time, so the fencing timeout. */
const POWER_LEVEL_TIMEOUT_MS = 60_000;

function normalizeLevels(levels: z.infer<typeof FenceLevelsInput>, fencingTimeoutMs: number): FenceLevel[] {
  return levels.map((level) => {
    const methods = Array.isArray(level) ? level : level.methods;
    const given = Array.isArray(level) ? undefined : level.timeoutMs;
    return {
      methods: [...new Set(methods)],
      timeoutMs: given ?? (methods.includes(WATCHDOG_METHOD) ? fencingTimeoutMs : POWER_LEVEL_TIMEOUT_MS),
    };
  });
}

const PolicyShape = z
  .object({
    /** Recorded in every audit record; replay compares it. */
    version: z.string().min(1).max(64).default("1"),
    heartbeat: z
      .object({
        intervalMs: Duration.default(1_000),
        /** No heartbeat for this long → `heartbeat.missed`. */
        timeoutMs: Duration.default(3_000),
      })
      .strict()
      .prefault({}),
    /** An unhealthy signal must last this long (from its start) before fencing begins. */
    unhealthyDurationMs: Duration.default(5_000),
    agent: AgentTiming.prefault({}),
    /**
     * How long after the last sign of life a silent node is assumed to have fenced itself.
     * Unset: the computed minimum. Shorter than the minimum: rejected.
     */
    safeTimeMs: Duration.optional(),
    fencing: z
      .object({
        /**
         * Without `levels`: fence by the node's watchdog (one level [watchdog]). With `levels`
         * it is derived: whether any level uses the watchdog.
         */
        watchdog: z.boolean().optional(),
        /**
         * Without `levels`: fence by power through the node's fence devices ([power], then
         * [watchdog] if that is on too). With `levels` it is derived: whether any level powers off.
         */
        fenceAgent: z.boolean().optional(),
        /**
         * The fencing topology: levels tried in order; each a set of methods that must all
         * succeed; a failed or timed-out level escalates to the next; the last one failing needs
         * an operator. For example [["ipmi"], ["watchdog"]] or [["pdu-a", "pdu-b"], ["watchdog"]].
         */
        levels: FenceLevelsInput.optional(),
        /** Levels per host group (as the node's agent reports it), instead of `levels`. */
        hostGroups: z.record(z.string().min(1).max(128), FenceLevelsInput).default({}),
        /** Levels per node, instead of its host group's or `levels`. */
        nodes: z.record(z.string().min(1).max(253), FenceLevelsInput).default({}),
        /**
         * After a power fence, power the node on again once its workloads moved, so that it
         * rejoins (boot id, checksums, re-provisioning; the boot gate holds its kubelet until the
         * engine lets it in); or leave it off for a person.
         */
        unfence: z.enum(["after-remediation", "never"]).default("after-remediation"),
        /**
         * The watchdog kinds (an agent's contract) the engine trusts to reset a silent node by
         * the safe time. The agent's software fallback timer is never trusted: it dies with the
         * agent.
         */
        watchdogKinds: z
          .array(z.enum(["hardware", "softdog"]))
          .min(1)
          .default(["hardware", "softdog"]),
        /** No confirmation at all after this long → operator required. */
        timeoutMs: Duration.default(600_000),
      })
      .strict()
      .prefault({})
      .transform((f, ctx) => {
        const { levels, hostGroups, nodes, watchdog, fenceAgent, ...rest } = f;
        const norm = (l: z.infer<typeof FenceLevelsInput>) => normalizeLevels(l, rest.timeoutMs);
        // Without levels, the two switches name them: [power] then [watchdog], or one of them.
        const fromSwitches: string[][] = [
          ...(fenceAgent === true ? [[POWER_METHOD]] : []),
          ...(watchdog !== false ? [[WATCHDOG_METHOD]] : []),
        ];
        const topology = {
          levels: norm(levels ?? (fromSwitches.length > 0 ? fromSwitches : [[WATCHDOG_METHOD]])),
          hostGroups: Object.fromEntries(Object.entries(hostGroups).map(([k, v]) => [k, norm(v)])),
          nodes: Object.fromEntries(Object.entries(nodes).map(([k, v]) => [k, norm(v)])),
        };
        const methods = [topology.levels, ...Object.values(topology.hostGroups), ...Object.values(topology.nodes)]
          .flat()
          .flatMap((l) => l.methods);
        const derived = { watchdog: methods.includes(WATCHDOG_METHOD), fenceAgent: methods.some((m) => m !== WATCHDOG_METHOD) };
        if (levels !== undefined) {
          // A switch that says otherwise than the levels would be silently ignored: refuse it.
          for (const key of ["watchdog", "fenceAgent"] as const) {
            if (f[key] !== undefined && f[key] !== derived[key]) {
              ctx.addIssue({
                code: "custom",
                path: [key],
                message: `fencing.${key}: ${f[key]} contradicts fencing.levels (${derived[key] ? "a level uses" : "no level uses"} ${key === "watchdog" ? "the watchdog" : "a power device"}); with levels, leave it out`,
              });
            }
          }
        }
        return { ...rest, ...topology, ...derived };
      }),
    /** Ordered remediations; when one times out the next starts; when all fail, an operator is needed. */
    remediation: z
      .array(z.object({ strategy: Strategy, timeoutMs: Duration.default(60_000) }).strict())
      .min(1)
      .default([
        { strategy: "Automatic", timeoutMs: 60_000 },
        { strategy: "ResourceDeletion", timeoutMs: 60_000 },
      ]),
    rejoin: z
      .object({
        /** The node must stay back this long before it is rejoined (flap damping). */
        healthyDelayMs: Duration.default(0),
        reprovisionTimeoutMs: Duration.default(600_000),
        reprovisionAttempts: z.number().int().positive().default(3),
        reprovisionBackoffMs: Duration.default(5_000),
      })
      .strict()
      .prefault({}),
    fleet: z
      .object({
        maxUnhealthy: FleetLimit.optional(),
        minHealthy: FleetLimit.default("51%"),
        /** At most this many control-plane nodes in remediation at a time. */
        maxControlPlane: z.number().int().nonnegative().default(1),
        /** How often a refused node asks again. */
        retryMs: Duration.default(5_000),
        /**
         * The control plane is one more vote when the fleet's size is even (a two-node fleet, an
         * even split): the side that has it may remediate the other (docs/agent.md, "Two nodes
         * and even splits").
         */
        witness: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    /** A command not carried out within this long is void. */
    commandTimeoutMs: Duration.default(30_000),
  })
  .strict();

export type SafeTimeBreakdown = {
  minSafeTimeMs: number;
  /** e.g. "5s control-plane timeout + 2s peer round + 10s watchdog + 5s margin = 22s" */
  explanation: string;
};

/**
 * The minimum time after a node's last sign of life before the remediating side may assume
 * it fenced itself: by then its agent noticed the lost control plane, asked its peers, stopped
 * feeding its watchdog and was reset by it.
 */
export function computeSafeTime(agent: AgentTiming): SafeTimeBreakdown {
  const parts: Array<[number, string]> = [
    [agent.controlPlaneTimeoutMs, "control-plane timeout"],
    [agent.peerRoundMs, "peer round"],
    [agent.watchdogTimeoutMs, "watchdog timeout"],
    [agent.marginMs, "margin"],
  ];
  const total = parts.reduce((sum, [ms]) => sum + ms, 0);
  return {
    minSafeTimeMs: total,
    explanation: `${parts.map(([ms, what]) => `${formatMs(ms)} ${what}`).join(" + ")} = ${formatMs(total)}`,
  };
}

function percentOf(limit: FleetLimit): number | null {
  return typeof limit === "string" && limit.endsWith("%") ? Number(limit.slice(0, -1)) : null;
}

export const Policy = PolicyShape.superRefine((p, ctx) => {
  const { minSafeTimeMs, explanation } = computeSafeTime(p.agent);
  if (p.safeTimeMs !== undefined && p.safeTimeMs < minSafeTimeMs) {
    ctx.addIssue({
      code: "custom",
      path: ["safeTimeMs"],
      message: `safeTimeMs ${formatMs(p.safeTimeMs)} is shorter than the minimum ${formatMs(minSafeTimeMs)} (${explanation})`,
    });
  }
  const minPct = percentOf(p.fleet.minHealthy);
  if (p.fencing.watchdog && minPct !== null && minPct <= 50) {
    ctx.addIssue({
      code: "custom",
      path: ["fleet", "minHealthy"],
      message: `minHealthy ${p.fleet.minHealthy} must be above 50% while fencing relies on watchdogs: a partitioned minority only fences itself if the engine never remediates without a healthy majority`,
    });
  }
  const maxPct = p.fleet.maxUnhealthy === undefined ? null : percentOf(p.fleet.maxUnhealthy);
  if (maxPct !== null && maxPct > 100) {
    ctx.addIssue({ code: "custom", path: ["fleet", "maxUnhealthy"], message: "maxUnhealthy cannot exceed 100%" });
  }
  if (minPct !== null && minPct > 100) {
    ctx.addIssue({ code: "custom", path: ["fleet", "minHealthy"], message: "minHealthy cannot exceed 100%" });
  }
  // Peers vouch for a node while the engine still records it healthy; the agent must hear the
  // truth within its margin, or it fences itself later than the safe time assumes.
  if (p.heartbeat.timeoutMs + p.agent.peerRoundMs > p.agent.controlPlaneTimeoutMs + p.agent.marginMs) {
    ctx.addIssue({
      code: "custom",
      path: ["heartbeat", "timeoutMs"],
      message: `heartbeat.timeoutMs ${formatMs(p.heartbeat.timeoutMs)} + agent.peerRoundMs ${formatMs(p.agent.peerRoundMs)} must not exceed agent.controlPlaneTimeoutMs ${formatMs(p.agent.controlPlaneTimeoutMs)} + agent.marginMs ${formatMs(p.agent.marginMs)}: until the engine marks the node suspect its peers vouch for it, so a slower detection would delay its self-fencing past the safe time`,
    });
  }
  if (!p.fencing.watchdog && !p.fencing.fenceAgent) {
    ctx.addIssue({ code: "custom", path: ["fencing"], message: "at least one fencing method (watchdog or fenceAgent) must be on" });
  }
  // Refinements run even when a field failed to parse: only well-formed levels are looked at.
  const topologies = [
    ["levels", p.fencing.levels],
    ...Object.entries(p.fencing.hostGroups ?? {}).map(([g, l]) => [`hostGroups.${g}`, l] as const),
    ...Object.entries(p.fencing.nodes ?? {}).map(([n, l]) => [`nodes.${n}`, l] as const),
  ] as const;
  for (const [where, levels] of topologies) {
    (Array.isArray(levels) ? levels : []).forEach((level, i) => {
      if (Array.isArray(level?.methods) && level.methods.includes(POWER_METHOD) && level.methods.length > 1) {
        ctx.addIssue({
          code: "custom",
          path: ["fencing", ...where.split("."), i],
          message: `"${POWER_METHOD}" already means every fence device of the node: name the devices instead of mixing them with it`,
        });
      }
    });
  }
});
export type Policy = z.infer<typeof Policy>;

/** A node's fencing levels: its own, else its host group's, else the policy's. */
export function fencingLevelsOf(policy: Policy, node: string, hostGroup?: string | null): FenceLevel[] {
  return policy.fencing.nodes[node] ?? (hostGroup ? policy.fencing.hostGroups[hostGroup] : undefined) ?? policy.fencing.levels;
}
export type PolicyInput = z.input<typeof Policy>;

/** The effective safe time of a valid policy. */
export function safeTimeOf(policy: Policy): number {
  return policy.safeTimeMs ?? computeSafeTime(policy.agent).minSafeTimeMs;
}

/** Resolves a `FleetLimit` against a fleet size; see `FleetLimit` for rounding. */
export function resolveLimit(limit: FleetLimit, fleetSize: number, round: "up" | "down"): number {
  const pct = percentOf(limit);
  if (pct === null) return Number(limit);
  const exact = (pct * fleetSize) / 100;
  return round === "up" ? Math.ceil(exact) : Math.floor(exact);
}

export const DEFAULT_POLICY: Policy = Policy.parse({});

/**
 * Short timings for the demo and the tests: same rules, seconds instead of tens of seconds.
 */
export const DEMO_POLICY: Policy = Policy.parse({
  version: "demo-1",
  heartbeat: { intervalMs: 200, timeoutMs: 1_000 },
  unhealthyDurationMs: 2_000,
  agent: { controlPlaneTimeoutMs: 1_000, peerRoundMs: 500, watchdogTimeoutMs: 1_500, marginMs: 1_000 },
  remediation: [
    { strategy: "Automatic", timeoutMs: 10_000 },
    { strategy: "ResourceDeletion", timeoutMs: 10_000 },
  ],
  rejoin: { reprovisionTimeoutMs: 10_000, reprovisionAttempts: 3, reprovisionBackoffMs: 500 },
  fleet: { retryMs: 1_000 },
  commandTimeoutMs: 10_000,
});
