import { KubeConfig } from "@kubernetes/client-node";
import { ErrorCode, FencelineError } from "@fenceline/contracts";

export type KubeConfigSource =
  /** A kubeconfig file. */
  | { kubeconfig: string }
  /** The pod's service account (KUBERNETES_SERVICE_HOST and the mounted token). */
  | { inCluster: true }
  /** $KUBECONFIG, ~/.kube/config, or the in-cluster service account, as kubectl does. */
  | { default: true };

/** Loads a kubeconfig; a missing or unreadable one is a clear FencelineError. */
export function loadKubeConfig(source: KubeConfigSource): KubeConfig {
  const kc = new KubeConfig();
  try {
    if ("kubeconfig" in source) kc.loadFromFile(source.kubeconfig);
    else if ("inCluster" in source) {
      if (!process.env.KUBERNETES_SERVICE_HOST) {
        throw new Error("KUBERNETES_SERVICE_HOST is not set: not running in a Kubernetes pod (use --kubeconfig FILE outside a cluster)");
      }
      kc.loadFromCluster();
    } else kc.loadFromDefault();
  } catch (err) {
    const where =
      "kubeconfig" in source
        ? `kubeconfig ${source.kubeconfig}`
        : "inCluster" in source
          ? "in-cluster configuration"
          : "default kubeconfig";
    throw new FencelineError(ErrorCode.InvalidPolicy, `cannot load the ${where}: ${(err as Error).message}`, { cause: err });
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new FencelineError(ErrorCode.InvalidPolicy, "the kubeconfig has no current cluster (set current-context)");
  return kc;
}
