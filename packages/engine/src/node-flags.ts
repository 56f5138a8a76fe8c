/**
 * The Node.js (V8) flags the engine process runs with: deploy/Dockerfile's ENTRYPOINT passes them,
 * and `fenceline bench throughput` runs both of its loops with them. A young generation of
 * 2 × 32 MB instead of Node's 2 × 16 MB: a batch's NATS messages, outputs and snapshots live until
 * its acknowledgements come back, and with the default size most of them survived two scavenges
 * and were copied into the old generation (docs/scale.md, `fenceline bench throughput`). It costs
 * at most 32 MB more of the process's memory.
 */
export const ENGINE_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=32"];

/** The flags of `ENGINE_NODE_FLAGS` this process was not started with (by name: a value given explicitly wins). */
export function missingEngineNodeFlags(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env.NODE_OPTIONS ?? "",
): string[] {
  const name = (flag: string) => flag.split("=")[0]!.replaceAll("_", "-");
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)].filter((f) => f.startsWith("--")).map(name));
  return ENGINE_NODE_FLAGS.filter((flag) => !given.has(name(flag)));
}
