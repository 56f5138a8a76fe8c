import { promises as fs } from "node:fs";
import { dirname } from "node:path";

/** When this boot last heard the control plane. */
export type ContactRecord = { bootId: string; at: number };

/**
 * Remembers the last control-plane contact across agent restarts within one boot: a restarted
 * agent must not believe it heard the control plane just now, or it would fence itself later
 * than the engine's safe time assumes.
 */
export interface ContactStore {
  load(): Promise<ContactRecord | undefined>;
  save(record: ContactRecord): Promise<void>;
}

/**
 * A small JSON file, by default under /run (tmpfs: it does not outlive the boot). Written on
 * every ack without fsync: only a restart of the agent within the same boot reads it back, and
 * the page cache survives that.
 */
export function createFileContactStore(path: string): ContactStore {
  let dirReady = false;
  return {
    async load() {
      try {
        const parsed = JSON.parse(await fs.readFile(path, "utf8")) as Partial<ContactRecord>;
        return typeof parsed.bootId === "string" && typeof parsed.at === "number" ? { bootId: parsed.bootId, at: parsed.at } : undefined;
      } catch {
        return undefined;
      }
    },
    async save(record) {
      if (!dirReady) {
        await fs.mkdir(dirname(path), { recursive: true });
        dirReady = true;
      }
      await fs.writeFile(path, JSON.stringify(record));
    },
  };
}

export function createMemoryContactStore(): ContactStore & { readonly record: ContactRecord | undefined } {
  let record: ContactRecord | undefined;
  return {
    get record() {
      return record;
    },
    load: async () => record,
    save: async (next) => {
      record = next;
    },
  };
}
