import { InMemoryCluster, VirtualClock, checkInvariants, type InMemoryClusterOptions, type Violation } from "../src/index.js";

const STEP_MS = 1_000;

/**
 * Deletes the node's VolumeAttachments through the API (what `kubectl delete volumeattachment`
 * does; Fenceline itself no longer does it); returns how many.
 */
export function detachAll(cluster: InMemoryCluster, node: string): number {
  let n = 0;
  for (const va of cluster.volumeAttachments()) if (va.node === node && cluster.deleteVolumeAttachment(va.volume, va.node)) n++;
  return n;
}

/** Three nodes, a virtual clock, and helpers that advance time one step at a time. */
export function createFixture(options: Partial<InMemoryClusterOptions> = {}) {
  const clock = new VirtualClock();
  const cluster = new InMemoryCluster({ clock, nodes: ["node-a", "node-b", "node-c"], ...options });
  const violations: Violation[] = [];
  /** Advances one step and checks the invariants after it, keeping every violation seen. */
  const tick = (ms = STEP_MS): void => {
    clock.advance(ms);
    cluster.step();
    violations.push(...checkInvariants(cluster, clock.now()).violations);
  };
  const runFor = (ms: number): void => {
    for (let elapsed = 0; elapsed < ms; elapsed += STEP_MS) tick();
  };
  const podOf = (name: string) => cluster.pod(name);
  const containersOf = (pod: string) => cluster.containers().filter((c) => c.pod === pod);
  return { clock, cluster, tick, runFor, violations, podOf, containersOf };
}
