import { Kvm, KvWatchInclude, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { ErrorCode, FencelineError, MembershipView, type MembershipStore } from "@fenceline/contracts";
import { Buckets, MEMBERSHIP_HISTORY } from "@fenceline/streams";
import type { Logger } from "./logger.js";

/** The key of the current view in FL_MEMBERS; its history holds the previous ones. */
export const MEMBERSHIP_KEY = "view";

const decoder = new TextDecoder();

/** A FL_MEMBERS value as a view, or null (with why) when it is not one. */
function parseView(data: Uint8Array): { view: MembershipView } | { error: string } {
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(data));
  } catch (err) {
    return { error: `not JSON: ${(err as Error).message}` };
  }
  const parsed = MembershipView.safeParse(json);
  return parsed.success ? { view: parsed.data } : { error: parsed.error.issues[0]?.message ?? "invalid" };
}

/** The membership view in FL_MEMBERS, read and written with compare-and-set on its revision. */
export function createKvMembershipStore(kv: KV): MembershipStore {
  return {
    async read() {
      const entry = await kv.get(MEMBERSHIP_KEY);
      if (!entry || entry.operation !== "PUT") return { view: null, revision: entry?.revision ?? 0 };
      const parsed = parseView(entry.value);
      if ("error" in parsed)
        throw new FencelineError(ErrorCode.Internal, `FL_MEMBERS holds an invalid view at revision ${entry.revision}: ${parsed.error}`);
      return { view: parsed.view, revision: entry.revision };
    },
    async write(view, revision) {
      try {
        return revision === 0
          ? await kv.create(MEMBERSHIP_KEY, JSON.stringify(view))
          : await kv.update(MEMBERSHIP_KEY, JSON.stringify(view), revision);
      } catch (err) {
        throw new FencelineError(ErrorCode.Concurrency, `membership view changed under revision ${revision}`, { cause: err });
      }
    },
  };
}

export async function openMembershipStore(nc: NatsConnection): Promise<MembershipStore> {
  return createKvMembershipStore(await new Kvm(nc).open(Buckets.members));
}

export type MembershipWatch = {
  /** The newest view seen (null: none yet). */
  current(): MembershipView | null;
  /** A view by version, if it is among the last ones kept. */
  view(version: number): MembershipView | undefined;
  /** The versions held, oldest first. */
  versions(): number[];
  /** Settles once the views already stored have been delivered. */
  ready: Promise<void>;
  stop(): Promise<void>;
};

/**
 * Follows FL_MEMBERS: every view in the key's history, then each new one, parsed (a malformed
 * value is logged and skipped). Keeps the last MEMBERSHIP_HISTORY views by version.
 */
export async function watchMembership(
  nc: NatsConnection,
  options: { log: Logger; onView?: (view: MembershipView) => void },
): Promise<MembershipWatch> {
  const kv = await new Kvm(nc).open(Buckets.members);
  const views = new Map<number, MembershipView>();
  let newest: MembershipView | null = null;
  const add = (view: MembershipView) => {
    if (views.has(view.version)) return;
    views.set(view.version, view);
    if (views.size > MEMBERSHIP_HISTORY) views.delete(Math.min(...views.keys()));
    if (!newest || view.version > newest.version) {
      newest = view;
      options.onView?.(view);
    }
  };
  // What is there now, so `ready` does not wait on an empty bucket.
  const stored = await kv.get(MEMBERSHIP_KEY);
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  if (!stored || stored.operation !== "PUT") markReady();
  const watch = await kv.watch({ key: MEMBERSHIP_KEY, include: KvWatchInclude.AllHistory });
  const done = (async () => {
    for await (const entry of watch) {
      if (entry.operation === "PUT") {
        const parsed = parseView(entry.value);
        if ("error" in parsed) options.log.warn({ revision: entry.revision, error: parsed.error }, "ignoring an invalid FL_MEMBERS view");
        else add(parsed.view);
      }
      if (!stored || entry.revision >= stored.revision) markReady();
    }
  })();
  return {
    current: () => newest,
    view: (version) => views.get(version),
    versions: () => [...views.keys()].sort((a, b) => a - b),
    ready,
    async stop() {
      watch.stop();
      markReady();
      await done.catch(() => {});
    },
  };
}
