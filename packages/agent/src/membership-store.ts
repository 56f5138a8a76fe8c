import { promises as fs } from "node:fs";
import { MembershipView } from "@fenceline/contracts";
import { writeFileDurably } from "./durable-file.js";
import type { MembershipViewStore } from "./ports.js";

/**
 * The membership view in a JSON file (e.g. /var/lib/fenceline/agent/membership.json), written
 * durably (temp file, fsync, rename, fsync of the directory). A missing file is "no view"; an
 * unreadable or invalid one is an error, which stops the agent at start: a view it reported
 * must not silently become none.
 */
export function createFileMembershipStore(path: string): MembershipViewStore {
  return {
    async load() {
      let text: string;
      try {
        text = await fs.readFile(path, "utf8");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw new Error(`cannot read the membership view ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (err) {
        throw new Error(`${path} is not JSON: ${(err as Error).message}`);
      }
      const parsed = MembershipView.safeParse(json);
      if (!parsed.success) throw new Error(`${path} is not a membership view: ${parsed.error.issues[0]?.message ?? "invalid"}`);
      return parsed.data;
    },
    save: (view) => writeFileDurably(path, `${JSON.stringify(view)}\n`),
  };
}

/** In memory, for the simulator (the simulator keeps it across a virtual reset, as a disk would). */
export function createMemoryMembershipViewStore(
  initial?: MembershipView,
): MembershipViewStore & { readonly view: MembershipView | undefined } {
  let view = initial;
  return {
    get view() {
      return view;
    },
    load: async () => view,
    save: async (next) => {
      view = next;
    },
  };
}
