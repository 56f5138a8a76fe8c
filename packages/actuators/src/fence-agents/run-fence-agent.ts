import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, isAbsolute, join } from "node:path";
import { FenceAgentError, FenceErrorCode } from "./errors.js";

/** The actions of the ClusterLabs fence agent interface that Fenceline uses. */
export type FenceAction = "off" | "on" | "status" | "monitor";

export type FenceAgentRun = {
  action: FenceAction;
  /** null when the agent was killed (timeout). */
  exitCode: number | null;
  /** stdout and stderr interleaved as they arrived, every credential replaced by `[redacted]`. */
  output: string;
  durationMs: number;
  timedOut: boolean;
};

export type RunFenceAgentOptions = {
  /** `fence_ipmilan` (looked up on PATH, then /usr/sbin, /usr/local/sbin, /sbin) or an absolute path. */
  agent: string;
  action: FenceAction;
  /** Standard fence agent parameters (`ip`, `username`, `lanplus`…), written to stdin as key=value lines. */
  params: Readonly<Record<string, string>>;
  /** Parameters that are credentials (`password`…): also written to stdin, and redacted from the output. */
  secrets?: Readonly<Record<string, string>>;
  /** Killed (its whole process group) after this long. */
  timeoutMs: number;
};

const OUTPUT_LIMIT = 32 * 1024;
/** Collected before redaction; a cut is moved to the next line break, and no credential holds one. */
const COLLECT_LIMIT = 1024 * 1024;
/** Debian installs the agents in /usr/sbin, which is not on an unprivileged user's PATH. */
const AGENT_DIRS = ["/usr/sbin", "/usr/local/sbin", "/sbin"];
const AGENT_NAME = /^fence_[A-Za-z0-9_]+$/;
const PARAM_NAME = /^[a-z][a-z0-9_]*$/;

/** Where an agent program is, or a FenceAgentError(not-found) that says where we looked. */
export function resolveAgent(agent: string): string {
  if (isAbsolute(agent)) {
    if (!isExecutable(agent))
      throw new FenceAgentError(FenceErrorCode.NotFound, `fence agent ${agent} does not exist or is not executable`);
    return agent;
  }
  if (!AGENT_NAME.test(agent)) {
    throw new FenceAgentError(
      FenceErrorCode.InvalidConfig,
      `fence agent ${JSON.stringify(agent)}: give a name like fence_ipmilan or an absolute path`,
    );
  }
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean), ...AGENT_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, agent);
    if (isExecutable(candidate)) return candidate;
  }
  throw new FenceAgentError(
    FenceErrorCode.NotFound,
    `fence agent ${agent} not found on PATH or in ${AGENT_DIRS.join(", ")} (Debian/Ubuntu: apt-get install fence-agents)`,
  );
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The stdin of a fence agent: one `key=value` line per parameter. A value with a line break
 * would smuggle in another parameter, so it is refused.
 */
export function stdinLines(
  action: FenceAction,
  params: Readonly<Record<string, string>>,
  secrets: Readonly<Record<string, string>> = {},
): string {
  const lines = [`action=${action}`];
  for (const [key, value] of [...Object.entries(params), ...Object.entries(secrets)]) {
    if (key === "action")
      throw new FenceAgentError(FenceErrorCode.InvalidConfig, "parameter action is set by Fenceline, not by the configuration");
    if (!PARAM_NAME.test(key))
      throw new FenceAgentError(
        FenceErrorCode.InvalidConfig,
        `parameter name ${JSON.stringify(key)} is not a fence agent parameter (lower case, digits, _)`,
      );
    if (/[\r\n\0]/.test(value)) {
      const shown = key in secrets ? "[redacted]" : JSON.stringify(value);
      throw new FenceAgentError(
        FenceErrorCode.InvalidConfig,
        `parameter ${key} = ${shown} contains a line break or NUL, which would inject another parameter`,
      );
    }
    lines.push(`${key}=${value}`);
  }
  return `${lines.join("\n")}\n`;
}

/**
 * Every form in which a credential could show up in an agent's output: as given, URL-encoded,
 * and inside an HTTP basic-auth header (base64 of user:password), which a verbose HTTP agent
 * such as fence_redfish may print.
 */
export function redactionsOf(params: Readonly<Record<string, string>>, secrets: Readonly<Record<string, string>>): string[] {
  const forms = new Set<string>();
  const user = params.username ?? params.login ?? "";
  for (const value of Object.values(secrets)) {
    if (value === "") continue;
    forms.add(value);
    forms.add(encodeURIComponent(value));
    forms.add(Buffer.from(`${user}:${value}`).toString("base64"));
  }
  // Longest first, so a secret that contains another is replaced whole.
  return [...forms].sort((a, b) => b.length - a.length);
}

function fromNextLine(text: string): string {
  const at = text.indexOf("\n");
  return at < 0 ? "" : text.slice(at + 1);
}

function lastChars(text: string, limit: number): string {
  return text.length <= limit ? text : `[…]\n${fromNextLine(text.slice(-limit))}`;
}

export function redact(text: string, forms: readonly string[]): string {
  let out = text;
  for (const form of forms) out = out.split(form).join("[redacted]");
  return out;
}

/**
 * Runs one action of a ClusterLabs fence agent with the standard interface: no arguments,
 * parameters as key=value lines on stdin (so nothing secret is in the process arguments that
 * every local user can read in /proc), a clean environment, and a timeout that kills the agent
 * and everything it started (fence_ipmilan runs ipmitool as a child). Resolves whatever the
 * exit code; rejects only when the agent cannot be started or the configuration is unusable.
 */
export function runFenceAgent(options: RunFenceAgentOptions): Promise<FenceAgentRun> {
  const path = resolveAgent(options.agent);
  const secrets = options.secrets ?? {};
  const input = stdinLines(options.action, options.params, secrets);
  const forms = redactionsOf(options.params, secrets);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(path, [], {
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
      env: {
        PATH: [process.env.PATH ?? "", "/usr/sbin:/usr/bin:/sbin:/bin"].filter(Boolean).join(delimiter),
        LANG: "C",
        LC_ALL: "C",
        // fence-agents 4.12 on Python 3.11 warns about the deprecated `pipes` module on every run.
        PYTHONWARNINGS: "ignore::DeprecationWarning",
      },
    });
    let output = "";
    const collect = (chunk: Buffer) => {
      output += chunk.toString("utf8");
      if (output.length > COLLECT_LIMIT) output = fromNextLine(output.slice(-COLLECT_LIMIT));
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    // An agent that exits before reading its parameters closes the pipe: not an error of ours.
    child.stdin.on("error", () => {});
    child.stdin.end(input);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
        else child.kill("SIGKILL");
      } catch {
        child.kill("SIGKILL");
      }
    }, options.timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new FenceAgentError(FenceErrorCode.NotFound, `cannot run fence agent ${path}: ${err.message}`));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({
        action: options.action,
        exitCode: timedOut ? null : code,
        output: lastChars(redact(output, forms), OUTPUT_LIMIT),
        durationMs: Date.now() - started,
        timedOut,
      });
    });
  });
}
