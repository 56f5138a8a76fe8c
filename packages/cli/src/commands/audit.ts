import { jetstream, DeliverPolicy } from "@nats-io/jetstream";
import { AuditRecord, nodeToken } from "@fenceline/contracts";
import { connectNats } from "@fenceline/bus";
import { Streams, Subjects } from "@fenceline/streams";
import { parse, printJson, serverUrl, UsageError } from "../args.js";

const USAGE = `usage: fenceline audit [--server nats://host:port] [--node NAME] [--follow] [--json | --export] [--changes]

Prints the audit trail (stream FL_AUDIT): one record per event the engine applied.
  --node NAME   only this node
  --follow      keep printing new records until interrupted
  --json        one JSON document on stdout: the array of records (not with --follow)
  --export      one JSON record per line, in stream order (with --follow too)
  --changes     only records where the state changed`;

export function formatAudit(r: AuditRecord): string {
  const time = new Date(r.at).toISOString().slice(11, 23);
  const move = r.changed ? `${r.from} → ${r.to}` : `(${r.to})`;
  const cmds = r.commands.length > 0 ? ` ⇒ ${r.commands.map((c) => c.kind).join(", ")}` : "";
  return `${time}  #${r.seq}  ${r.node.padEnd(10)} ${r.event.type.padEnd(18)} ${move}${cmds}${r.reason ? `  — ${r.reason}` : ""}`;
}

/** Reads the audit stream in order; `follow` keeps going, otherwise stops at the end. */
export async function* readAudit(url: string, options: { node?: string; follow?: boolean }): AsyncGenerator<AuditRecord> {
  const nc = await connectNats(url, { name: "fenceline-cli" });
  try {
    const js = jetstream(nc);
    const jsm = await import("@nats-io/jetstream").then((m) => m.jetstreamManager(nc));
    const filter = options.node ? Subjects.audit(options.node) : Subjects.auditAll;
    const info = await jsm.streams.info(Streams.audit);
    if (info.state.messages === 0 && !options.follow) return;
    const consumer = await js.consumers.get(Streams.audit, { filter_subjects: filter, deliver_policy: DeliverPolicy.All });
    const messages = await consumer.consume();
    for await (const m of messages) {
      const parsed = AuditRecord.safeParse(m.json());
      if (parsed.success) yield parsed.data;
      if (!options.follow && m.info.pending === 0) break;
    }
  } finally {
    await nc.close();
  }
}

export async function auditCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    { server: { type: "string" }, node: { type: "string" }, follow: { type: "boolean", short: "f" }, json: { type: "boolean" }, export: { type: "boolean" }, changes: { type: "boolean" } },
    USAGE,
  );
  if (values.help) return (console.log(USAGE), 0);
  const url = serverUrl(values.server as string | undefined);
  const node = values.node as string | undefined;
  if (node) nodeToken(node);
  if (values.json && values.export) throw new UsageError("give --json (one JSON document) or --export (JSON lines), not both");
  if (values.json && values.follow) throw new UsageError("--json prints one JSON document and cannot --follow; use --export --follow for a stream of JSON lines");
  const records = readAudit(url, { ...(node ? { node } : {}), follow: Boolean(values.follow) });
  if (values.json) {
    const all: AuditRecord[] = [];
    for await (const record of records) if (!values.changes || record.changed) all.push(record);
    printJson(all);
    return 0;
  }
  let any = false;
  for await (const record of records) {
    if (values.changes && !record.changed) continue;
    any = true;
    process.stdout.write(`${values.export ? JSON.stringify(record) : formatAudit(record)}\n`);
  }
  if (!any && !values.export) console.error("no audit records");
  return 0;
}
