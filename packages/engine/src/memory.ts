import type { AuditRecord, Command } from "@fenceline/contracts";
import { FencelineError, ErrorCode } from "@fenceline/contracts";
import type { OutputSink, SnapshotStore } from "./ports.js";
import type { NodeSnapshot } from "./snapshot.js";

/** In-memory snapshot store with the same revision semantics as a KV bucket. */
export function createMemorySnapshotStore(): SnapshotStore & { dump(): Map<string, { snapshot: NodeSnapshot; revision: number }> } {
  const data = new Map<string, { snapshot: NodeSnapshot; revision: number }>();
  let revisions = 0;
  return {
    async get(node) {
      const entry = data.get(node);
      return entry ? { snapshot: structuredClone(entry.snapshot), revision: entry.revision } : null;
    },
    async put(snapshot, revision) {
      const current = data.get(snapshot.node)?.revision ?? 0;
      if (current !== revision) {
        throw new FencelineError(ErrorCode.Concurrency, `snapshot of ${snapshot.node} is at revision ${current}, not ${revision}`);
      }
      revisions += 1;
      data.set(snapshot.node, { snapshot: structuredClone(snapshot), revision: revisions });
      return revisions;
    },
    async list() {
      return [...data.values()].map((e) => structuredClone(e.snapshot));
    },
    dump: () => data,
  };
}

/** In-memory outputs that deduplicate by id, like JetStream's duplicate window. */
export function createMemoryOutputs(): OutputSink & { commands: Command[]; audit: AuditRecord[] } {
  const seen = new Set<string>();
  const commands: Command[] = [];
  const audit: AuditRecord[] = [];
  return {
    commands,
    audit,
    async publish(list) {
      for (const output of list) {
        const item = output.type === "command" ? output.command : output.record;
        if (seen.has(item.id)) continue;
        seen.add(item.id);
        if (output.type === "command") commands.push(output.command);
        else audit.push(output.record);
      }
      return list.map(() => null);
    },
  };
}
