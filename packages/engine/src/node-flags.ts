/**
 * The Node.js (V8) flags the engine process runs with: deploy/Dockerfile's ENTRYPOINT passes them,
 * and `fenceline bench throughput` runs all of its loops with them. Measured in `fenceline bench
 * throughput` (docs/scale.md):
 *   - a young generation fixed at 2 × 64 MB instead of Node's, which starts at 2 × 1 MB and grows
 *     only as scavenges find it too small (and shrinks again when the process idles): a batch's
 *     NATS messages, outputs and snapshots live until its acknowledgements come back, and in a
 *     small young generation most of them were copied twice and promoted. About a fifth more
 *     events per second than `--max-semi-space-size=32` alone;
 *   - no allocation-site pretenuring: V8 saw the fold's snapshots live on (the engine caches each
 *     node's last one) and began allocating every fold's objects in the old generation, where the
 *     dead ones keep the young objects they point to alive until the next mark-compact. Off, a
 *     scavenge copies half as much (in-process deciding path: 464 B per event surviving, not 1,125);
 *   - a 128 MB initial old generation: the engine promotes ~400 B per event (mostly garbage soon),
 *     and with Node's small initial limit that meant 2–6 mark-compacts per 50,000 events; now the
 *     old generation fills for longer and each mark-compact finds mostly garbage.
 * Together they cost at most ~260 MB of the process's memory (deploy/engine.yaml allows 512 MiB).
 */
export const ENGINE_NODE_FLAGS: readonly string[] = [
  "--max-semi-space-size=64",
  "--min-semi-space-size=64",
  "--no-allocation-site-pretenuring",
  "--initial-old-space-size=128",
];

/** Flags that go together: one of them given explicitly, and none of the others is added (a minimum above a given maximum). */
const TOGETHER: ReadonlyArray<readonly string[]> = [["--max-semi-space-size", "--min-semi-space-size"]];

/** The flags of `ENGINE_NODE_FLAGS` this process was not started with (by name: a value given explicitly wins). */
export function missingEngineNodeFlags(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env.NODE_OPTIONS ?? "",
): string[] {
  // A flag and its negation are one flag: `--allocation-site-pretenuring` given keeps it on.
  const name = (flag: string) =>
    flag
      .split("=")[0]!
      .replaceAll("_", "-")
      .replace(/^--no-/, "--");
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)].filter((f) => f.startsWith("--")).map(name));
  for (const group of TOGETHER) if (group.some((flag) => given.has(flag))) for (const flag of group) given.add(flag);
  return ENGINE_NODE_FLAGS.filter((flag) => !given.has(name(flag)));
}
