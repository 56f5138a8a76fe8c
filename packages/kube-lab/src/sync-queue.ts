/**
 * Syncs keys as a controller's work queue does: one sync at a time per key, and a key asked for
 * while its sync runs is synced once more after it, however often it was asked meanwhile.
 */
export function createSyncQueue(options: {
  sync: (key: string) => Promise<void>;
  /** False once the syncer stopped (or went offline): no sync again, no error reported. */
  active: () => boolean;
  onError: (key: string, err: Error) => void;
}): (key: string) => void {
  /** The keys being synced, each with whether it was asked for again meanwhile. */
  const running = new Map<string, boolean>();
  return (key) => {
    if (running.has(key)) {
      running.set(key, true);
      return;
    }
    void (async () => {
      do {
        running.set(key, false); // (before the first await: the key counts as running at once)
        try {
          await options.sync(key);
        } catch (err) {
          if (options.active()) options.onError(key, err as Error);
        }
      } while (running.get(key) && options.active());
      running.delete(key);
    })();
  };
}
