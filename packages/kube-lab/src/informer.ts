import type { KubeClient, KubeList, KubeObject, RequestOptions } from "./kube-client.js";

export type InformerChange<T> = { type: "ADDED" | "MODIFIED" | "DELETED"; object: T };

export type Informer<T extends KubeObject = KubeObject> = {
  /** Resolves after the first list. */
  readonly synced: Promise<void>;
  get(key: string): T | undefined;
  items(): T[];
  stop(): void;
};

export const keyOf = (o: KubeObject) => (o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * List, then watch from the list's resourceVersion, resuming after the server ends a watch and
 * listing again after a 410 or an error (reporting what disappeared meanwhile as DELETED): the
 * cache a controller keeps, as client-go's informers do.
 */
export function startInformer<T extends KubeObject = KubeObject>(
  client: KubeClient,
  path: string,
  query: RequestOptions["query"],
  onChange: (change: InformerChange<T>) => void,
): Informer<T> {
  const cache = new Map<string, T>();
  let running = true;
  let current: { stop(): void } | null = null;
  let markSynced: () => void = () => {};
  const synced = new Promise<void>((r) => (markSynced = r));

  const relist = async (): Promise<string> => {
    const list = await client.list<T>(path, query);
    const seen = new Set<string>();
    for (const item of list.items) {
      const key = keyOf(item);
      seen.add(key);
      const old = cache.get(key);
      cache.set(key, item);
      if (!old) onChange({ type: "ADDED", object: item });
      else if (old.metadata.resourceVersion !== item.metadata.resourceVersion) onChange({ type: "MODIFIED", object: item });
    }
    for (const [key, item] of [...cache]) {
      if (seen.has(key)) continue;
      cache.delete(key);
      onChange({ type: "DELETED", object: item });
    }
    return (list as KubeList<T>).metadata.resourceVersion;
  };

  void (async () => {
    let failures = 0;
    while (running) {
      let rv: string;
      try {
        rv = await relist();
        markSynced();
        failures = 0;
      } catch {
        failures++;
        await sleep(Math.min(5_000, 100 * 2 ** failures));
        continue;
      }
      for (;;) {
        if (!running) return;
        const watch = client.watch<T>(path, { ...query, resourceVersion: rv, timeoutSeconds: 240 }, (event) => {
          if (event.type === "BOOKMARK") {
            rv = event.object.metadata.resourceVersion ?? rv;
            return;
          }
          if (event.type === "ERROR") return;
          const object = event.object;
          rv = object.metadata.resourceVersion ?? rv;
          const key = keyOf(object);
          if (event.type === "DELETED") cache.delete(key);
          else cache.set(key, object);
          onChange({ type: event.type, object });
        });
        current = watch;
        const outcome = await watch.ended;
        current = null;
        if (outcome === "closed") continue;
        if (outcome === "error") await sleep(200);
        break;
      }
    }
  })();

  return {
    synced,
    get: (key) => cache.get(key),
    items: () => [...cache.values()],
    stop() {
      running = false;
      current?.stop();
    },
  };
}
