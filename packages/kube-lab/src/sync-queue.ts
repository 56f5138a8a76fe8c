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
  const keys = new Map<string, { running: boolean; again: boolean }>();
  return (key) => {
    let q = keys.get(key);
    if (!q) keys.set(key, (q = { running: false, again: false }));
    if (q.running) {
      q.again = true;
      return;
    }
    const state = q;
    state.running = true;
    void (async () => {
      do {
        state.again = false;
        try {
          await options.sync(key);
        } catch (err) {
          if (options.active()) options.onError(key, err as Error);
        }
      } while (state.again && options.active());
      state.running = false;
    })();
  };
}
