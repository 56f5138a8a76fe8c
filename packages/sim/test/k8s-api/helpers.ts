import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createKubernetesCluster, loadKubeConfig } from "@fenceline/kubernetes";
import {
  InMemoryCluster,
  startKubernetesApiServer,
  VirtualClock,
  type KubernetesApiServer,
  type KubernetesApiServerOptions,
} from "../../src/index.js";

export type ApiFixture = Awaited<ReturnType<typeof startApiFixture>>;

/**
 * A three-node cluster with a StatefulSet and a Deployment, its API server on a loopback port,
 * a kubeconfig in a temporary directory and the real adapter created from it. The clock is
 * virtual: `tick()` advances it and steps the model (which the server follows).
 */
export async function startApiFixture(options: { serverVersion?: string; server?: Partial<KubernetesApiServerOptions> } = {}) {
  const clock = new VirtualClock();
  const cluster = new InMemoryCluster({
    clock,
    nodes: ["node-a", "node-b", "node-c"],
    ...(options.serverVersion ? { serverVersion: options.serverVersion } : {}),
  });
  cluster.addStatefulSet("db", 2);
  cluster.addDeployment("web", 2);
  const tick = (ms = 1_000) => {
    clock.advance(ms);
    cluster.step();
  };
  tick();
  const server: KubernetesApiServer = await startKubernetesApiServer({
    cluster,
    clock,
    nodeMonitorGracePeriodMs: 5_000,
    token: "random",
    ...options.server,
  });
  const dir = mkdtempSync(join(tmpdir(), "fl-k8s-"));
  const kubeconfig = server.writeKubeconfig(dir);
  const kubeConfig = loadKubeConfig({ kubeconfig });
  const adapter = createKubernetesCluster({ kubeConfig, retry: { baseMs: 5, maxMs: 20 } });
  return {
    clock,
    cluster,
    server,
    kubeconfig,
    kubeConfig,
    adapter,
    tick,
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
