import { type AuditRecord, nodeToken } from "@fenceline/contracts";
import { connectNats } from "@fenceline/bus";
import { readAudit } from "@fenceline/read-model";
import { parse, printJson, serverUrl, UsageError } from "@fenceline/command-line";

const USAGE = `usage: fenceline audit [--server nats://host:port] [--node NAME] [--follow] [--json | --export] [--changes]

Prints the audit trail (stream FL_AUDIT): one record per event the engine applied.
  --node NAME   only this node
  --follow      keep printing new records until interrupted
  --json        one JSON document on stdout: the array of records (not with --follow)
  --export      one JSON record per line, in stream order (with --follow too)
  --changes     only records where the state changed`;

function formatAudit(r: AuditRecord): string {
  const time = new Date(r.at).toISOString().slice(11, 23);
  const move = r.changed ? `${r.from} → ${r.to}` : `(${r.to})`;
  const cmds = r.commands.length > 0 ? ` ⇒ ${r.commands.map((c) => c.kind).join(", ")}` : "";
  return `${time}  #${r.seq}  ${r.node.padEnd(10)} ${r.event.type.padEnd(18)} ${move}${cmds}${r.reason ? `  — ${r.reason}` : ""}`;
}

export async function auditCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      server: { type: "string" },
      node: { type: "string" },
      follow: { type: "boolean", short: "f" },
      json: { type: "boolean" },
      export: { type: "boolean" },
      changes: { type: "boolean" },
    },
    USAGE,
  );
  if (values.help) return (console.log(USAGE), 0);
  const url = serverUrl(values.server as string | undefined);
  const node = values.node as string | undefined;
  if (node) nodeToken(node);
  if (values.json && values.export) throw new UsageError("give --json (one JSON document) or --export (JSON lines), not both");
  if (values.json && values.follow)
    throw new UsageError("--json prints one JSON document and cannot --follow; use --export --follow for a stream of JSON lines");
  const nc = await connectNats(url, { name: "fenceline-cli" });
  try {
    const records = readAudit(nc, { ...(node ? { node } : {}), follow: Boolean(values.follow) });
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
  } finally {
    await nc.close();
  }
}
