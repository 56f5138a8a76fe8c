import { parentPort } from "node:worker_threads";
import { runSeed, type SeedOptions } from "./run-seed.js";
import { compactResult } from "./parallel.js";

/** A worker thread of `runSeeds`: runs the seeds it is sent, one at a time, and posts the results. */
const port = parentPort;
if (!port) throw new Error("lab worker: not running in a worker thread");
port.on("message", (message: { seed: number; options: SeedOptions } | { stop: true }) => {
  if ("stop" in message) {
    port.close();
    return;
  }
  runSeed(message.seed, message.options).then(
    (result) => port.postMessage({ result: compactResult(result) }),
    (err: unknown) =>
      port.postMessage({ error: { seed: message.seed, message: err instanceof Error ? (err.stack ?? err.message) : String(err) } }),
  );
});
