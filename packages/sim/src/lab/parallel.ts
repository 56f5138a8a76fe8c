import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { runSeed, type SeedOptions, type SeedResult } from "./run-seed.js";

/** A seed's result without its audit and trail (what crosses a thread boundary). */
export type CompactResult = Omit<SeedResult, "audit" | "trail">;

export function compactResult(result: SeedResult): CompactResult {
  const { audit: _audit, trail: _trail, ...rest } = result;
  return rest;
}

export type RunSeedsOptions = {
  seeds: readonly number[];
  /** Worker threads (default: 2, at most the machine's parallelism). 1 runs in this thread. */
  jobs?: number;
  options?: Omit<SeedOptions, "keep">;
  onResult?: (result: CompactResult) => void;
};

/** The compiled worker next to this module, when there is one (not when running from sources). */
function workerFile(): string | null {
  const url = new URL("./worker.js", import.meta.url);
  if (url.protocol !== "file:") return null;
  const path = fileURLToPath(url);
  return import.meta.url.endsWith(".js") && existsSync(path) ? path : null;
}

/**
 * Runs many seeds, spread over worker threads (each seed is single-threaded and deterministic on
 * its own, so the split changes nothing but the wall time). Results come back sorted by seed.
 */
export async function runSeeds(options: RunSeedsOptions): Promise<CompactResult[]> {
  const seeds = [...options.seeds];
  const jobs = Math.max(1, Math.min(options.jobs ?? Math.min(2, availableParallelism()), seeds.length));
  const seedOptions = options.options ?? {};
  const results: CompactResult[] = [];
  const file = workerFile();
  const collect = (result: CompactResult) => {
    results.push(result);
    options.onResult?.(result);
  };

  if (jobs === 1 || file === null) {
    for (const seed of seeds) collect(compactResult(await runSeed(seed, seedOptions)));
    return results.sort((a, b) => a.seed - b.seed);
  }

  let next = 0;
  await Promise.all(
    Array.from(
      { length: jobs },
      () =>
        new Promise<void>((resolve, reject) => {
          const worker = new Worker(file);
          const feed = () => {
            if (next >= seeds.length) {
              worker.postMessage({ stop: true });
              return;
            }
            worker.postMessage({ seed: seeds[next++]!, options: seedOptions });
          };
          worker.on("message", (message: { result?: CompactResult; error?: { seed: number; message: string } }) => {
            if (message.error) {
              void worker.terminate();
              reject(new Error(`seed ${message.error.seed}: ${message.error.message}`));
              return;
            }
            collect(message.result!);
            feed();
          });
          worker.on("error", reject);
          worker.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`a lab worker exited with code ${code}`))));
          feed();
        }),
    ),
  );
  return results.sort((a, b) => a.seed - b.seed);
}
