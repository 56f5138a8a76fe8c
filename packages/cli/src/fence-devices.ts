import {
  createFenceDevices,
  createSecretReader,
  loadFenceDevices,
  namedNodes,
  type FenceDevice,
  type FenceDevicesConfig,
} from "@fenceline/actuators";
import type { Logger } from "@fenceline/bus";

/** A Kubernetes client for Secrets, loaded only when a kubeconfig is given (the client takes a second to import). */
export type KubeSource = { kubeconfig: string } | { inCluster: true };

/** The fence devices of a devices file, their passwords read through files, env or (with a cluster) Secrets. */
export async function loadDevices(
  path: string,
  options: { kube?: KubeSource | null; log?: Logger } = {},
): Promise<{ config: FenceDevicesConfig; devices: FenceDevice[] }> {
  const config = loadFenceDevices(path);
  let kubernetes: ((ref: { namespace: string; name: string; key: string }) => Promise<string>) | undefined;
  if (options.kube) {
    const k8s = await import("@fenceline/kubernetes");
    kubernetes = k8s.createSecretKeyReader({ kubeConfig: k8s.loadKubeConfig(options.kube), ...(options.log ? { log: options.log } : {}) });
  }
  const devices = createFenceDevices(config, { readSecret: createSecretReader(kubernetes ? { kubernetes } : {}) });
  return { config, devices };
}

/** Every node the devices file names exactly, sorted. */
export function nodesNamedIn(config: FenceDevicesConfig): string[] {
  return [...new Set(Object.values(config.devices).flatMap(namedNodes))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
}
