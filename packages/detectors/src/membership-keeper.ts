import {
  createMembershipView,
  ErrorCode,
  FencelineError,
  sameMembership,
  type Member,
  type MembershipStore,
  type MembershipView,
} from "@fenceline/contracts";

/** What the keeper knows of a node from the engine's record of it (FL_NODES). */
export type MemberRecord = { node: string; path: string; peerUrl?: string };

/** The state a forgotten node rests in: it is no longer a member. */
export const FORGOTTEN_STATE = "forgotten";

/** Whether a node's record makes it a member: every node the engine manages that was not forgotten. */
export function isMemberRecord(record: Pick<MemberRecord, "path">): boolean {
  return record.path.split(".")[0] !== FORGOTTEN_STATE;
}

/** The peer URL a snapshot's context carries, if it is one. */
export function peerUrlOf(context: Record<string, unknown>): string | undefined {
  const url = context.peerUrl;
  return typeof url === "string" && url.length > 0 && url.length <= 512 ? url : undefined;
}

/**
 * The view that should follow `current` given the engine's records: its members are the records
 * that are members (with their peer URLs). Null when nothing changed (same members, addresses
 * and witness), so an unchanged fleet never gets a new version.
 */
export function nextMembershipView(
  current: MembershipView | null,
  records: Iterable<MemberRecord>,
  witness: boolean,
): MembershipView | null {
  const members: Member[] = [];
  for (const r of records)
    if (isMemberRecord(r)) members.push(r.peerUrl === undefined ? { node: r.node } : { node: r.node, peerUrl: r.peerUrl });
  const next = createMembershipView((current?.version ?? 0) + 1, witness, members);
  return current && sameMembership(current, next) ? null : next;
}

/**
 * The membership keeper: keeps the view in the store equal to the engine's records. Every
 * control-plane instance may run one; compare-and-set on the store makes each version follow
 * exactly one other. `observe` and `remove` are fed from the FL_NODES watch; `sync` writes the
 * next view when it differs (call it once the watch has delivered what was already stored, so
 * a half-read bucket never becomes a smaller view).
 *
 * With several instances, one whose watch lags would write a view without the nodes it has not
 * read yet (a member gone, then back: a view no agent should have to count with). So each
 * attempt first reads the store, then waits until this instance's records are `caughtUp` with
 * everything FL_NODES held at that moment: every view is then computed from at least as much of
 * FL_NODES as the view it follows, and members leave only when their records say so.
 */
export function createMembershipKeeper(options: {
  store: MembershipStore;
  witness: boolean;
  onWritten?: (view: MembershipView) => void;
  /** Resolves once the records include every FL_NODES write made before the call. */
  caughtUp?: () => Promise<void>;
}) {
  const { store, witness } = options;
  const records = new Map<string, MemberRecord>();
  let running: Promise<MembershipView | null> | null = null;
  let again = false;

  const once = async (): Promise<MembershipView | null> => {
    for (let attempt = 0; ; attempt++) {
      const { view, revision } = await store.read();
      await options.caughtUp?.();
      const next = nextMembershipView(view, records.values(), witness);
      if (!next) return null;
      try {
        await store.write(next, revision);
        options.onWritten?.(next);
        return next;
      } catch (err) {
        // Another instance wrote meanwhile: read again and compare with what it wrote.
        if (!(err instanceof FencelineError && err.code === ErrorCode.Concurrency) || attempt >= 20) throw err;
      }
    }
  };

  return {
    /** A node's record (its snapshot) as stored now. */
    observe(record: MemberRecord): boolean {
      const prev = records.get(record.node);
      if (prev && prev.path.split(".")[0] === record.path.split(".")[0] && prev.peerUrl === record.peerUrl) return false;
      const relevant = !prev || isMemberRecord(prev) !== isMemberRecord(record) || prev.peerUrl !== record.peerUrl;
      records.set(record.node, record);
      return relevant;
    },
    /** A node's record was deleted. */
    remove(node: string): boolean {
      const prev = records.get(node);
      records.delete(node);
      return prev !== undefined && isMemberRecord(prev);
    },
    /**
     * Writes the next view if the records call for one; resolves with it (null: nothing to
     * write). Concurrent calls are folded into one more run after the current one.
     */
    sync(): Promise<MembershipView | null> {
      if (running) {
        again = true;
        return running;
      }
      running = (async () => {
        let last: MembershipView | null = null;
        try {
          do {
            again = false;
            last = (await once()) ?? last;
          } while (again);
          return last;
        } finally {
          running = null;
        }
      })();
      return running;
    },
    members: () =>
      [...records.values()]
        .filter(isMemberRecord)
        .map((r) => r.node)
        .sort(),
  };
}
export type MembershipKeeper = ReturnType<typeof createMembershipKeeper>;

/** A membership store in memory with the same compare-and-set semantics (the lab, tests). */
export function createMemoryMembershipStore(): MembershipStore & { current(): MembershipView | null; history(): MembershipView[] } {
  const written: MembershipView[] = [];
  return {
    async read() {
      const view = written.at(-1) ?? null;
      return { view, revision: written.length };
    },
    async write(view, revision) {
      if (revision !== written.length)
        throw new FencelineError(ErrorCode.Concurrency, `membership at revision ${written.length}, not ${revision}`);
      written.push(view);
      return written.length;
    },
    current: () => written.at(-1) ?? null,
    history: () => [...written],
  };
}
