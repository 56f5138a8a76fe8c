import { readFileSync } from "node:fs";
import { z } from "zod";
import { Duration, ErrorCode, FencelineError } from "@fenceline/contracts";

/**
 * Where a credential comes from: a file (a mounted Kubernetes Secret, or a root-only file), a
 * key of a Kubernetes Secret read through the API, or an environment variable. Never inline.
 */
export const SecretSource = z.union([
  z.object({ file: z.string().min(1) }).strict(),
  z.object({ secret: z.object({ namespace: z.string().min(1), name: z.string().min(1), key: z.string().min(1) }).strict() }).strict(),
  z.object({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/) }).strict(),
]);
export type SecretSource = z.infer<typeof SecretSource>;

/**
 * Parameter values as the agents read them from stdin. The library enables a flag only for the
 * value "1" (or empty), so `true` becomes "1" and `false` leaves the parameter out.
 */
const ParamValue = z.union([z.string().max(4096), z.number(), z.boolean()]);
const Params = z.record(z.string(), ParamValue).superRefine((params, ctx) => {
  for (const key of Object.keys(params)) {
    if (key === "password" || key === "passwd") {
      ctx.addIssue({
        code: "custom",
        path: [key],
        message: `give the password as "password": { "file": … } (or secret, or env), never inline in params`,
      });
    }
    if (key === "action") ctx.addIssue({ code: "custom", path: [key], message: "action is set by Fenceline (off, status, on)" });
  }
});

/** What a node, host group or device contributes: parameters and credentials. */
const Target = z
  .object({
    params: Params.default({}),
    password: SecretSource.optional(),
    /** Other credential parameters (for example hexadecimal_kg): passed on stdin, redacted like the password. */
    secrets: z.record(z.string(), SecretSource).default({}),
  })
  .strict();

export const FenceDeviceConfig = z
  .object({
    /** `fence_ipmilan`, `fence_redfish`… (looked up on PATH and in /usr/sbin) or an absolute path. */
    agent: z.string().min(1),
    ...Target.shape,
    /**
     * Per host group (as the node's agent reports it): parameters and credentials shared by the
     * group. A device with neither `hostGroups` nor `nodes` covers every node.
     */
    hostGroups: z.record(z.string(), Target).default({}),
    /**
     * Per node: exact names, or patterns with `*` ("rack1-*"). An exact name wins over a pattern,
     * a pattern over the host group, the host group over the device's own parameters.
     */
    nodes: z.record(z.string(), Target).default({}),
    /** One run of the agent (off, on or status) is killed after this long. */
    timeoutMs: Duration.default(20_000),
    /** Further attempts after an unreachable, timed-out or failed run (never after a refused login). */
    retries: z.number().int().nonnegative().max(10).default(2),
    retryDelayMs: Duration.default(1_000),
    /** After `off`, the power state is read back until it says off, for at most this long. */
    confirmWithinMs: Duration.default(20_000),
    pollMs: Duration.default(500),
  })
  .strict();
export type FenceDeviceConfig = z.infer<typeof FenceDeviceConfig>;

export const FenceDevicesConfig = z
  .object({
    devices: z
      .record(z.string().regex(/^[a-z][a-z0-9-]*$/, "a device name: lower case, digits and -"), FenceDeviceConfig)
      .refine(
        (devices) => !("watchdog" in devices) && !("power" in devices),
        "watchdog (the node's own watchdog) and power (every device of the node) are fencing methods of the policy, not device names",
      ),
  })
  .strict();
export type FenceDevicesConfig = z.infer<typeof FenceDevicesConfig>;

/** Loads and validates a fence devices file, listing every problem. */
export function loadFenceDevices(path: string): FenceDevicesConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new FencelineError(ErrorCode.InvalidPolicy, `cannot read fence devices ${path}: ${(err as Error).message}`);
  }
  const parsed = FenceDevicesConfig.safeParse(raw);
  if (!parsed.success)
    throw new FencelineError(ErrorCode.InvalidPolicy, `invalid fence devices ${path}:\n${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

function globToRegExp(pattern: string): RegExp {
  return new RegExp(
    `^${pattern
      .split("*")
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
  );
}

type TargetConfig = z.infer<typeof Target>;

/** The entries of a device that apply to a node, most general first; null when the device does not cover it. */
function entriesFor(device: FenceDeviceConfig, node: string, hostGroup?: string): TargetConfig[] | null {
  const layers: TargetConfig[] = [
    { params: device.params, secrets: device.secrets, ...(device.password ? { password: device.password } : {}) },
  ];
  const group = hostGroup !== undefined ? device.hostGroups[hostGroup] : undefined;
  if (group) layers.push(group);
  const patterns = Object.entries(device.nodes).filter(([key]) => key.includes("*") && globToRegExp(key).test(node));
  // A longer pattern is the more specific one.
  patterns.sort(([a], [b]) => a.length - b.length);
  for (const [, entry] of patterns) layers.push(entry);
  const exact = Object.hasOwn(device.nodes, node) && !node.includes("*") ? device.nodes[node] : undefined;
  if (exact) layers.push(exact);
  const everyone = Object.keys(device.nodes).length === 0 && Object.keys(device.hostGroups).length === 0;
  return everyone || group || patterns.length > 0 || exact ? layers : null;
}

export type ResolvedTarget = {
  params: Record<string, string>;
  /** Credential parameter name → where its value comes from. */
  secrets: Record<string, SecretSource>;
};

/** The parameters and credential sources of a device for a node, `{node}` and `{hostGroup}` substituted. */
export function resolveTarget(device: FenceDeviceConfig, node: string, hostGroup?: string): ResolvedTarget | null {
  const layers = entriesFor(device, node, hostGroup);
  if (!layers) return null;
  const params: Record<string, string> = {};
  const secrets: Record<string, SecretSource> = {};
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer.params)) {
      if (value === false) delete params[key];
      else
        params[key] =
          value === true
            ? "1"
            : String(value)
                .replaceAll("{node}", node)
                .replaceAll("{hostGroup}", hostGroup ?? "");
    }
    if (layer.password) secrets.password = layer.password;
    Object.assign(secrets, layer.secrets);
  }
  return { params, secrets };
}

/** Node names a device names exactly (for a check that has no fleet to ask). */
export function namedNodes(device: FenceDeviceConfig): string[] {
  return Object.keys(device.nodes).filter((key) => !key.includes("*"));
}
