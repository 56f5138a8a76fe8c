import { promises as fs } from "node:fs";
import { writeFileDurably } from "./durable-file.js";
import type { SelfFenceRecord, SelfFenceStore } from "./ports.js";

/** Keeps the self-fence record in a JSON file (e.g. /var/lib/fenceline/agent/self-fence.json). */
export function createFileSelfFenceStore(path: string): SelfFenceStore {
  return {
    load: async () => {
      let text: string;
      try {
        text = await fs.readFile(path, "utf8");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw err;
      }
      return parseRecord(text, path);
    },
    save: (record) => writeFileDurably(path, `${JSON.stringify(record)}\n`),
    clear: () => fs.rm(path, { force: true }),
  };
}

/** An in-memory store, for the simulator (it survives a virtual reset if the simulator keeps it). */
export function createMemorySelfFenceStore(initial?: SelfFenceRecord): SelfFenceStore & { readonly record: SelfFenceRecord | undefined } {
  let record = initial;
  return {
    get record() {
      return record;
    },
    load: async () => record,
    save: async (next) => {
      record = next;
    },
    clear: async () => {
      record = undefined;
    },
  };
}

function parseRecord(text: string, path: string): SelfFenceRecord {
  const json: unknown = JSON.parse(text);
  if (typeof json === "object" && json !== null) {
    const { at, reason, bootId } = json as Record<string, unknown>;
    if (typeof at === "number" && typeof reason === "string" && typeof bootId === "string") {
      return { at, reason: reason.slice(0, 256), bootId: bootId.slice(0, 128) };
    }
  }
  throw new Error(`${path} is not a self-fence record ({ at, reason, bootId })`);
}
