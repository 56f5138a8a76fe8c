import { FenceAgentError, FenceErrorCode } from "./errors.js";
import type { FenceAgentRun } from "./run-fence-agent.js";

/**
 * Reading a fence agent's answer. The ClusterLabs agents share one library (fencing.py): `status`
 * prints `Status: ON` (exit 0) or `Status: OFF` (exit 2); `off`/`on` print `Success: Powered OFF`
 * or `Success: Already OFF` (exit 0); a failure exits 1 with `ERROR: Failed: …` or
 * `ERROR: Connection timed out` lines. The underlying tool's messages (ipmitool's, curl's) show
 * only with `verbose`.
 */

/** ipmitool's answer when the session could not be opened, for a refused login and for silence alike. */
const IPMI_SESSION = /Unable to establish IPMI v2 \/ RMCP\+ session|Unable to establish LAN session|Error: Unable to establish/i;
/**
 * A BMC that refuses a login answers within one round trip; one that does not answer makes
 * ipmitool wait for its per-request timeout (fence_ipmilan's `ipmitool_timeout`, 2 s by default)
 * and retry. So a session failure well inside that timeout was a refusal.
 */
const IPMI_REFUSAL_WITHIN_MS = 1_500;

const AUTH = [
  /RAKP 2 HMAC is invalid/i,
  /unauthorized name/i,
  /invalid (user ?name|password|credentials)/i,
  /authentication (failed|failure)/i,
  /login (failed|incorrect|denied)/i,
  /\b401\b.*unauthori[sz]ed|unauthori[sz]ed.*\b401\b/i,
  /access denied/i,
  /does not have the correct privileges|insufficient privilege/i,
];
const UNREACHABLE = [
  /Connection timed out/i,
  /Connection (refused|lost|reset)/i,
  /No route to host/i,
  /Network is unreachable/i,
  /Name or service not known|Could not resolve host|Temporary failure in name resolution/i,
  /Failed to connect|Couldn't connect|Unable to connect(?!\/login)/i,
  /Get Auth Capabilities error/i,
  /timed out/i,
];

const LOG_LINE = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) (\w+): (.*)$/;

/**
 * How long the tool the agent ran took until it printed `marker`, from the agent's own log
 * timestamps (`verbose`: "… INFO: Executing: …" then "… DEBUG: 1 Error: …"). The agent's whole run
 * also counts Python starting, which takes seconds on a loaded machine.
 */
function toolDurationMs(output: string, marker: RegExp): number | undefined {
  let executedAt: number | undefined;
  for (const line of output.split("\n")) {
    const m = LOG_LINE.exec(line.trim());
    if (!m) continue;
    const at = Date.parse(`${m[1]!.replace(" ", "T")}.${m[2]}Z`);
    if (/^Executing:/.test(m[4]!)) executedAt = at;
    else if (marker.test(m[4]!) && executedAt !== undefined) return at - executedAt;
  }
  return undefined;
}

/** The last lines of output that say something (the agent's ERROR lines, or the tool's). */
export function gist(output: string, lines = 3): string {
  const meaningful = output
    .split("\n")
    // "2026-12-04 05:13:27,587 DEBUG: 1  Error: …" → "Error: …"
    .map((l) => l.trim().replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?:DEBUG: \d+ +|[A-Z]+: )/, ""))
    .filter((l) => l !== "" && !/^Executing:/.test(l) && !/Please use '-h' for usage/.test(l));
  const errors = meaningful.filter((l) => /error|fail|unable|denied|invalid|timed out|refused/i.test(l));
  return (errors.length > 0 ? errors : meaningful).slice(-lines).join(" | ").slice(0, 500);
}

const seconds = (ms: number) => (ms < 1_000 ? `${ms} ms` : `${(ms / 1_000).toFixed(1)} s`);

/** Turns a run that did not give the answer asked for into a typed error with a message a person can act on. */
export function failureOf(run: FenceAgentRun, what: string): FenceAgentError {
  const { output, durationMs } = run;
  if (run.timedOut) {
    return new FenceAgentError(
      FenceErrorCode.Timeout,
      `${what}: no answer within ${seconds(durationMs)}; the agent was killed (is the device reachable and the timeout long enough?)${suffix(output)}`,
      output,
    );
  }
  const exit = `exit ${run.exitCode} after ${seconds(durationMs)}`;
  if (/Timed out waiting to power (ON|OFF)/i.test(output)) {
    return new FenceAgentError(
      FenceErrorCode.Failed,
      `${what}: the device took the command but the power state did not change (${exit})${suffix(output)}`,
      output,
    );
  }
  if (AUTH.some((re) => re.test(output))) {
    return new FenceAgentError(
      FenceErrorCode.Auth,
      `${what}: the device refused the login: wrong user or password, or too little privilege (${exit})${suffix(output)}`,
      output,
    );
  }
  if (IPMI_SESSION.test(output)) {
    const sessionMs = toolDurationMs(output, IPMI_SESSION) ?? durationMs;
    return sessionMs < IPMI_REFUSAL_WITHIN_MS
      ? new FenceAgentError(
          FenceErrorCode.Auth,
          `${what}: the BMC refused the IPMI session at once: wrong user or password (or a cipher suite or privilege level it does not allow) (${exit})${suffix(output)}`,
          output,
        )
      : new FenceAgentError(
          FenceErrorCode.Unreachable,
          `${what}: no IPMI session could be opened: the BMC does not answer (${exit})${suffix(output)}`,
          output,
        );
  }
  if (UNREACHABLE.some((re) => re.test(output))) {
    return new FenceAgentError(FenceErrorCode.Unreachable, `${what}: the device could not be reached (${exit})${suffix(output)}`, output);
  }
  if (/Unable to connect\/login to fencing device/i.test(output)) {
    return new FenceAgentError(
      FenceErrorCode.Auth,
      `${what}: could not connect or log in to the device (check its address, user and password) (${exit})${suffix(output)}`,
      output,
    );
  }
  if (run.exitCode === 0 || (run.action === "status" && run.exitCode === 2)) {
    return new FenceAgentError(
      FenceErrorCode.UnexpectedOutput,
      `${what}: the agent succeeded but printed no answer Fenceline can read (${exit})${suffix(output)}`,
      output,
    );
  }
  return new FenceAgentError(FenceErrorCode.Failed, `${what}: failed (${exit})${suffix(output)}`, output);
}

function suffix(output: string): string {
  const text = gist(output);
  return text ? `: ${text}` : "";
}

/** The power state a `status` run read back, or the reason it did not. */
export function powerOf(run: FenceAgentRun, what: string): "on" | "off" {
  const match = /^\s*Status:\s*(ON|OFF)\s*$/im.exec(run.output);
  const said = match?.[1]?.toLowerCase() as "on" | "off" | undefined;
  // The library exits 0 for ON and 2 for OFF; anything else is a failure whatever it printed.
  if (said === "on" && run.exitCode === 0) return "on";
  if (said === "off" && run.exitCode === 2) return "off";
  throw failureOf(run, what);
}

/** Checks that an `off` or `on` run says it succeeded. */
export function confirmAction(run: FenceAgentRun, action: "off" | "on", what: string): void {
  const state = action.toUpperCase();
  const said = new RegExp(`^\\s*Success:\\s*(Powered|Already)\\s+${state}\\s*$`, "im").test(run.output);
  if (said && run.exitCode === 0) return;
  throw failureOf(run, what);
}

/**
 * Whether an `off` run shows the agent reading the power state back as off itself, as
 * fence_ipmilan (and its aliases: fence_idrac, fence_ilo3…) does with `verbose`: ipmitool's
 * "Chassis Power is off" after the `chassis power off` it executed (fencing.py polls the status
 * until it reads off, and only then prints "Powered OFF"), or before "Already OFF". An agent that
 * shows no such read-back (one that only sets the power, or prints nothing of its tool) gets
 * Fenceline's own `status` read-back.
 */
export function agentReadBackOff(run: FenceAgentRun): boolean {
  if (run.action !== "off" || run.exitCode !== 0 || run.timedOut) return false;
  const lines = run.output.split("\n");
  const powered = lines.findIndex((l) => /^\s*Success:\s*Powered\s+OFF\s*$/i.test(l));
  const already = lines.findIndex((l) => /^\s*Success:\s*Already\s+OFF\s*$/i.test(l));
  const end = powered >= 0 ? powered : already;
  if (end < 0) return false;
  let from = 0;
  if (powered >= 0) {
    // After the last power-off command the agent executed.
    from = -1;
    for (let i = 0; i < end; i++) if (/Executing:.*\bchassis power off\b/i.test(lines[i]!)) from = i + 1;
    if (from < 0) return false;
  }
  // The status read that answered last before the verdict says off.
  let last: string | undefined;
  for (let i = from; i < end; i++) {
    const m = /\bChassis Power is (on|off)\b/i.exec(lines[i]!);
    if (m) last = m[1]!.toLowerCase();
  }
  return last === "off";
}
