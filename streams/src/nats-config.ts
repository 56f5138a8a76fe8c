import { ACTUATORS } from "@fenceline/contracts";
import { Buckets, Consumers, Streams, Subjects, agentInboxPrefix } from "./subjects.js";
import { createDefinitions, type Definitions } from "./definitions.js";

/**
 * Fenceline's NATS users and what each may do, as data, and the nats-server configuration
 * that enforces it. Pure: no I/O, no randomness (passwords come in).
 * See docs/security.md for the reasoning behind every line.
 */

export type SubjectPermission = { allow: string[]; deny?: string[] };
export type Permissions = {
  publish: SubjectPermission;
  subscribe: SubjectPermission;
  /** Lets the user answer requests it received (publish to their reply subject once). */
  allowResponses?: boolean;
};

/** The fixed roles; every node additionally gets its own `agent-<node>` user. */
export const ROLES = ["engine", "detector", "actuator", "control-plane", "cli", "serf"] as const;
export type Role = (typeof ROLES)[number];

export const AGENT_USER_PREFIX = "agent-";
export const agentUser = (node: string) => `${AGENT_USER_PREFIX}${node}`;

/** Inbox prefix of `fenceline serf-handler` runs (NATS_INBOX_PREFIX), which live on the nodes. */
export const SERF_INBOX_PREFIX = "_INBOX.serf";

const kvStream = (bucket: string) => `KV_${bucket}`;
const kvSubjects = (bucket: string) => `$KV.${bucket}.>`;

/** Reading a stream by sequence or subject (KV get, the engine's event log). */
function readMessages(stream: string): string[] {
  return [
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.STREAM.MSG.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}.>`,
  ];
}

/**
 * Ordered (ephemeral) consumers: KV watch and keys, `fenceline audit`, replay. Create (old and
 * 2.9 API), info, next, delete, and flow control of push consumers (KV watch).
 */
function orderedConsumers(stream: string): string[] {
  return [
    `$JS.API.CONSUMER.CREATE.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}.>`,
    `$JS.API.CONSUMER.INFO.${stream}.*`,
    `$JS.API.CONSUMER.MSG.NEXT.${stream}.*`,
    `$JS.API.CONSUMER.DELETE.${stream}.*`,
    `$JS.FC.${stream}.>`,
  ];
}

/** Read a KV bucket: get, keys, watch. */
function kvRead(bucket: string): string[] {
  return [...readMessages(kvStream(bucket)), ...orderedConsumers(kvStream(bucket))];
}

/** Read and write a KV bucket (compare-and-set updates are publishes to `$KV.<bucket>.<key>`). */
function kvReadWrite(bucket: string): string[] {
  return [...kvRead(bucket), kvSubjects(bucket)];
}

/** Pull from the durable consumers of `stream` and settle their messages (ack, nak, working, term). */
function pullDurables(stream: string): string[] {
  return [`$JS.API.CONSUMER.INFO.${stream}.*`, `$JS.API.CONSUMER.MSG.NEXT.${stream}.*`, `$JS.ACK.${stream}.*.>`];
}

/** Create and update every stream, consumer and bucket Fenceline declares (provisionStreams). */
function provisioning(definitions: Definitions): string[] {
  const streams = [...definitions.streams.map((s) => s.name), ...definitions.buckets.map((b) => kvStream(b.name))];
  return streams.flatMap((s) => [
    `$JS.API.STREAM.CREATE.${s}`,
    `$JS.API.STREAM.UPDATE.${s}`,
    `$JS.API.STREAM.INFO.${s}`,
    `$JS.API.CONSUMER.CREATE.${s}`,
    `$JS.API.CONSUMER.CREATE.${s}.>`,
    `$JS.API.CONSUMER.DURABLE.CREATE.${s}.*`,
    `$JS.API.CONSUMER.INFO.${s}.*`,
  ]);
}

const JS_INFO = ["$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST"];
/** Replies to the process's own requests (JetStream API, publish acks, pulled messages). */
const INBOX = "_INBOX.>";

const uniq = (xs: string[]) => [...new Set(xs)];
const perms = (publish: string[], subscribe: string[], extra: Partial<Permissions> = {}): Permissions => ({
  publish: { allow: uniq(publish), ...(extra.publish?.deny ? { deny: extra.publish.deny } : {}) },
  subscribe: { allow: uniq(subscribe), ...(extra.subscribe?.deny ? { deny: extra.subscribe.deny } : {}) },
  ...(extra.allowResponses ? { allowResponses: true } : {}),
});

/**
 * The node agent of `node`: publishes only its own heartbeats, receives only its own acks and
 * commands, answers the commands (allow_responses), asks the node state service about any node
 * (it answers its peers about the asking peer; the answer is a lifecycle state, nothing secret),
 * and dead-letters invalid input. Its replies arrive on `_INBOX.agent.<node>.>`, not `_INBOX.>`:
 * the control plane's inboxes carry pulled events, commands and snapshots.
 */
export function agentPermissions(node: string): Permissions {
  const inbox = agentInboxPrefix(node);
  return perms(
    [Subjects.heartbeat(node), Subjects.nodeStateAll, Subjects.deadLetter("agent")],
    [Subjects.heartbeatAck(node), Subjects.agentCommand(node), `${inbox}.>`],
    { allowResponses: true },
  );
}

/** Permissions of a fixed role. `definitions` (the streams Fenceline declares) default to createDefinitions(). */
export function rolePermissions(role: Role, definitions: Definitions = createDefinitions()): Permissions {
  const allBuckets = definitions.buckets.map((b) => b.name);
  const engineDurables = definitions.consumers.filter((c) => c.stream === Streams.events).map((c) => c.config.durable_name);
  switch (role) {
    case "detector":
      // Heartbeat detector, node state service, condition detector: events in, never commands.
      return perms(
        [
          ...JS_INFO,
          Subjects.eventAll,
          "fl.hback.*",
          // Node state replies go to the asking agent's own inbox; nowhere else (an agent chooses
          // the reply subject of its request, so a wider grant would let it aim the detector's
          // replies at other subjects).
          "_INBOX.agent.>",
          Subjects.deadLetter("heartbeat-detector"),
          Subjects.deadLetter("node-state"),
          Subjects.deadLetter("condition-detector"),
          ...kvRead(Buckets.nodes),
          // The membership keeper writes the view the acks carry.
          ...kvReadWrite(Buckets.members),
        ],
        [Subjects.heartbeatAll, Subjects.nodeStateAll, INBOX],
      );
    case "engine":
      // The fold: events in (durable `engine`), commands, audit and timer events out; snapshots
      // in FL_NODES; owns provisioning of the streams; metrics read event and audit traffic.
      return perms(
        [
          ...JS_INFO,
          Subjects.commandAll,
          Subjects.auditAll,
          Subjects.eventAll,
          Subjects.deadLetter("engine"),
          ...readMessages(Streams.events),
          ...pullDurables(Streams.events),
          // Engine instances take partitions over and rewind a partition's consumer to its
          // ack floor (consumer reset, nats-server 2.14).
          `$JS.API.CONSUMER.RESET.${Streams.events}.*`,
          `$JS.API.CONSUMER.NAMES.${Streams.events}`,
          `$JS.API.CONSUMER.LIST.${Streams.events}`,
          `$JS.API.STREAM.INFO.${Streams.deadLetters}`,
          ...allBuckets.flatMap(kvReadWrite),
          ...provisioning(definitions),
        ],
        [Subjects.eventAll, Subjects.auditAll, INBOX],
        // It answers a publish on a subject no stream stores (fl.evt.*.>) with the reason.
        { allowResponses: true },
      );
    case "actuator":
      // Carry out commands (durables actuator-<name>), publish results; the fleet guard keeps
      // its budget in FL_FLEET and watches FL_NODES and heartbeats; the agent relay asks agents.
      return perms(
        [
          ...JS_INFO,
          Subjects.eventAll,
          "fl.agent.*.cmd",
          ...ACTUATORS.map((a) => Subjects.deadLetter(Consumers.actuator(a))),
          ...pullDurables(Streams.commands),
          ...kvReadWrite(Buckets.fleet),
          ...kvRead(Buckets.nodes),
          ...kvRead(Buckets.members),
        ],
        [Subjects.heartbeatAll, INBOX],
      );
    case "control-plane": {
      // `fenceline up` runs engine, detectors and actuators on one connection.
      const parts = (["engine", "detector", "actuator"] as const).map((r) => rolePermissions(r, definitions));
      return perms(
        parts.flatMap((p) => p.publish.allow),
        parts.flatMap((p) => p.subscribe.allow),
        parts.some((p) => p.allowResponses) ? { allowResponses: true } : {},
      );
    }
    case "cli": {
      // The operator: reads everything (nodes, audit, replay, ui), publishes operator events.
      // Ordered consumers are allowed; taking messages from (or changing) the durables of the
      // engine and the actuators is not, nor is anything that would remove a command.
      const readable = [Streams.events, Streams.audit, Streams.deadLetters, ...allBuckets.map(kvStream)];
      return perms(
        [
          ...JS_INFO,
          Subjects.eventAll,
          "$JS.API.STREAM.INFO.*",
          ...readable.flatMap((s) => [...readMessages(s), ...orderedConsumers(s)]),
          `$JS.API.STREAM.MSG.GET.${Streams.commands}`,
        ],
        [Subjects.eventAll, Subjects.auditAll, Subjects.deadLetterAll, INBOX],
        {
          publish: {
            allow: [],
            deny: [
              ...engineDurables.flatMap((c) => [
                `$JS.API.CONSUMER.MSG.NEXT.${Streams.events}.${c}`,
                `$JS.API.CONSUMER.DELETE.${Streams.events}.${c}`,
                `$JS.API.CONSUMER.RESET.${Streams.events}.${c}`,
                `$JS.API.CONSUMER.UNPIN.${Streams.events}.${c}`,
                `$JS.API.CONSUMER.CREATE.${Streams.events}.${c}`,
                `$JS.API.CONSUMER.CREATE.${Streams.events}.${c}.>`,
              ]),
              "$JS.ACK.>",
            ],
          },
        },
      );
    }
    case "serf":
      // `fenceline serf-handler` runs on the nodes: membership events for known nodes only.
      return perms(
        [...JS_INFO, Subjects.eventAll, Subjects.deadLetter("serf-handler"), ...readMessages(kvStream(Buckets.nodes))],
        [`${SERF_INBOX_PREFIX}.>`],
      );
  }
}

export type UserAuth = { password: string } | { nkey: string };
export type NatsUser = { user: string; role: Role | "agent"; node?: string; auth: UserAuth; permissions: Permissions };

/** Every user of a fleet: one per fixed role, one per node. Names are checked by the caller. */
export function fencelineUsers(
  nodes: readonly string[],
  auth: (user: string) => UserAuth,
  definitions: Definitions = createDefinitions(),
): NatsUser[] {
  return [
    ...ROLES.map((role) => ({ user: role, role, auth: auth(role), permissions: rolePermissions(role, definitions) })),
    ...nodes.map((node) => ({
      user: agentUser(node),
      role: "agent" as const,
      node,
      auth: auth(agentUser(node)),
      permissions: agentPermissions(node),
    })),
  ];
}

export type TlsConfig = { certFile: string; keyFile: string; caFile?: string; verify?: boolean };
export type NatsConfigOptions = {
  users: NatsUser[];
  host?: string;
  port?: number;
  storeDir?: string;
  tls?: TlsConfig;
  /** A comment line at the top (e.g. how it was generated). */
  header?: string;
};

/** A string in nats-server config syntax (double-quoted, escaped). */
export function quote(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

function list(xs: string[], indent: string): string {
  if (xs.length === 0) return "[]";
  return `[\n${xs.map((x) => `${indent}  ${quote(x)}`).join(",\n")}\n${indent}]`;
}

function renderPermissions(p: Permissions, indent: string): string {
  const block = (name: string, sp: SubjectPermission) => {
    const lines = [`${indent}  ${name}: {`, `${indent}    allow: ${list(sp.allow, `${indent}    `)}`];
    if (sp.deny && sp.deny.length > 0) lines.push(`${indent}    deny: ${list(sp.deny, `${indent}    `)}`);
    lines.push(`${indent}  }`);
    return lines.join("\n");
  };
  const lines = [`${indent}permissions: {`, block("publish", p.publish), block("subscribe", p.subscribe)];
  if (p.allowResponses) lines.push(`${indent}  allow_responses: true`);
  lines.push(`${indent}}`);
  return lines.join("\n");
}

/** The nats-server configuration file: listen address, JetStream, TLS, one user per role and node. */
export function renderNatsConfig(options: NatsConfigOptions): string {
  const out: string[] = [];
  if (options.header) out.push(...options.header.split("\n").map((l) => `# ${l}`), "");
  if (options.host) out.push(`host: ${quote(options.host)}`);
  out.push(`port: ${options.port ?? 4222}`, "");
  out.push("jetstream: {");
  if (options.storeDir) out.push(`  store_dir: ${quote(options.storeDir)}`);
  out.push("}", "");
  if (options.tls) {
    const { certFile, keyFile, caFile, verify } = options.tls;
    out.push("tls: {", `  cert_file: ${quote(certFile)}`, `  key_file: ${quote(keyFile)}`);
    if (caFile) out.push(`  ca_file: ${quote(caFile)}`);
    if (verify) out.push("  verify: true");
    out.push("  timeout: 2", "}", "");
  }
  out.push("authorization: {", "  users: [");
  options.users.forEach((u, i) => {
    const who = u.role === "agent" ? `node agent of ${u.node}` : `role ${u.role}`;
    // nkey users have no user name: the public key is the identity (the comment names it).
    if ("password" in u.auth)
      out.push(`    # ${who}`, "    {", `      user: ${quote(u.user)}`, `      password: ${quote(u.auth.password)}`);
    else out.push(`    # ${who}: user ${u.user}`, "    {", `      nkey: ${quote(u.auth.nkey)}`);
    out.push(renderPermissions(u.permissions, "      "), `    }${i < options.users.length - 1 ? "," : ""}`);
  });
  out.push("  ]", "}", "");
  return out.join("\n");
}

/** The NATS URL a process of `user` connects with (password auth), e.g. for NATS_URL. */
export function userUrl(user: string, password: string, hostPort: string, scheme: "nats" | "tls" = "nats"): string {
  return `${scheme}://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${hostPort}`;
}
