import { createEvent, NodeName, type NodeEvent } from "@fenceline/contracts";

/**
 * Serf membership as a second source of node events. Serf runs its event handler with
 * `SERF_EVENT` set and one line per member on stdin:
 *
 *     <name> TAB <address> TAB <role> TAB <tag>=<value>,<tag>=<value>
 *
 * (serf escapes tabs and newlines inside fields as \t and \n). This module is pure: it parses
 * those lines and says which node events they mean; serf-handler.ts does the I/O.
 *
 * | serf event      | node event                                   | why |
 * |-----------------|----------------------------------------------|-----|
 * | member-failed   | signal.unhealthy {signal: "serf", since: now} | serf's failure detector gave up on the member |
 * | member-join     | signal.healthy {signal: "serf"}               | the member is alive (serf sends join also when a failed member comes back) |
 * | member-update   | signal.healthy {signal: "serf"}               | the member is alive (its tags changed) |
 * | member-leave    | signal.healthy {signal: "serf"}               | a graceful leave is not a failure: serf withdraws its opinion, liveness is left to heartbeats |
 * | member-reap     | none (logged)                                 | bookkeeping: serf forgets a member that failed or left long ago |
 * | user, query, …  | none (logged)                                 | not membership |
 *
 * Why a leave withdraws the signal instead of adding one: a leave is what a member does when it
 * is stopped on purpose (maintenance, decommissioning) and what `serf force-leave` does to a
 * failed member. Neither is proof that the node is dead, and keeping a stale "serf says failed"
 * signal after serf stopped watching the member would hold the node unhealthy forever. The
 * heartbeat signal is independent: a node that really is gone stays unhealthy through it.
 */

export type SerfMember = {
  name: string;
  address: string;
  role: string;
  tags: Record<string, string>;
  /** The line as serf wrote it (for dead letters). */
  line: string;
};

export type SerfRejected = { line: string; error: string };

export const SERF_SIGNAL = "serf";
/**
 * Event ids are `serf:<event>:<node>:<window>`, with time cut into windows of this length: the
 * serf agents of several machines that report the same failure within a window publish the same
 * id, which JetStream stores once. Duplicates across a window boundary are harmless (an unhealthy
 * signal keeps its earliest `since`; a healthy one is idempotent). A second failure of the same
 * member within one window cannot happen: serf's suspicion timeout alone is longer (≥ 4 s on a
 * LAN) and the member must rejoin in between.
 */
export const SERF_ID_WINDOW_MS = 5_000;

const MEMBERSHIP_EVENTS = ["member-join", "member-leave", "member-failed", "member-update", "member-reap"] as const;
export type SerfMembershipEvent = (typeof MEMBERSHIP_EVENTS)[number];

export function isMembershipEvent(event: string | undefined): event is SerfMembershipEvent {
  return (MEMBERSHIP_EVENTS as readonly string[]).includes(event ?? "");
}

const unescapeField = (field: string) => field.replaceAll("\\t", "\t").replaceAll("\\n", "\n");

/** Parses the handler's stdin. Blank lines are skipped; a line without a name is rejected. */
export function parseSerfMembers(text: string): { members: SerfMember[]; rejected: SerfRejected[] } {
  const members: SerfMember[] = [];
  const rejected: SerfRejected[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "") continue;
    const [name = "", address = "", role = "", tagText = ""] = line.split("\t");
    if (name.trim() === "") {
      rejected.push({ line, error: "no member name" });
      continue;
    }
    const tags: Record<string, string> = {};
    for (const pair of tagText.split(",")) {
      if (pair === "") continue;
      const eq = pair.indexOf("=");
      if (eq <= 0) continue;
      tags[unescapeField(pair.slice(0, eq))] = unescapeField(pair.slice(eq + 1));
    }
    members.push({ name: unescapeField(name), address, role: unescapeField(role), tags, line });
  }
  return { members, rejected };
}

export type SerfTranslation = {
  /** One event per member, in input order. */
  events: Array<{ member: SerfMember; event: NodeEvent }>;
  /** Members whose name (or name tag) is not a valid node name. */
  rejected: SerfRejected[];
  /** Why nothing is published for this serf event, when it is ignored as a whole. */
  ignored?: string;
};

/**
 * The node events a serf event means (see the table above). `nodeTag`: take the node name from
 * this member tag when the member has it (serf names are often `<label>-<serial>`, as contiv's
 * were), else the serf member name. `self` is SERF_SELF_NAME, recorded as the event's source.
 */
export function translateSerfEvent(input: {
  event: string | undefined;
  members: readonly SerfMember[];
  now: number;
  self?: string;
  nodeTag?: string;
}): SerfTranslation {
  const { event, now } = input;
  if (!event) return { events: [], rejected: [], ignored: "SERF_EVENT is not set (not run by serf?)" };
  if (!isMembershipEvent(event))
    return { events: [], rejected: [], ignored: `serf event "${event.slice(0, 64)}" is not a membership event` };
  if (event === "member-reap")
    return { events: [], rejected: [], ignored: "member-reap: serf forgets members that failed or left long ago; nothing to report" };

  const source = `serf:${(input.self ?? "handler").slice(0, 120)}`;
  const window = Math.floor(now / SERF_ID_WINDOW_MS);
  const events: SerfTranslation["events"] = [];
  const rejected: SerfRejected[] = [];
  for (const member of input.members) {
    const name = (input.nodeTag !== undefined ? member.tags[input.nodeTag] : undefined) ?? member.name;
    const parsed = NodeName.safeParse(name);
    if (!parsed.success) {
      const from = input.nodeTag !== undefined && member.tags[input.nodeTag] !== undefined ? `tag ${input.nodeTag}` : "member name";
      rejected.push({
        line: member.line,
        error: `${from} "${name.slice(0, 64)}" is not a node name: ${parsed.error.issues[0]?.message ?? "invalid"}`,
      });
      continue;
    }
    const node = parsed.data;
    const id = `serf:${event}:${node}:${window}`;
    const where = member.address ? ` (${member.address})` : "";
    const nodeEvent =
      event === "member-failed"
        ? createEvent("signal.unhealthy", {
            id,
            node,
            at: now,
            source,
            data: {
              signal: SERF_SIGNAL,
              since: now,
              detail: `serf member-failed${where}, seen by ${input.self ?? "a serf agent"}`.slice(0, 512),
            },
          })
        : createEvent("signal.healthy", { id, node, at: now, source, data: { signal: SERF_SIGNAL } });
    events.push({ member, event: nodeEvent });
  }
  return { events, rejected };
}
