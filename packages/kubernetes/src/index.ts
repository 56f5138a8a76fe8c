export {
  createKubernetesCluster,
  parseServerVersion,
  mustMove,
  isMirrorPod,
  isDaemonSetPod,
  toleratesOutOfService,
  type KubernetesCluster,
  type KubernetesClusterOptions,
} from "./cluster-adapter.js";
export { createNodeEventRecorder, nodeEventsOf, type KubeNodeEvent, type NodeEventRecorder } from "./node-events.js";
export {
  createNodeWatcher,
  toClusterNode,
  type ClusterNode,
  type NodeWatchEvent,
  type NodeWatcher,
  type NodeWatcherOptions,
} from "./node-watcher.js";
export { createSecretKeyReader, type SecretKeyRef } from "./secret-reader.js";
export { loadKubeConfig, type KubeConfigSource } from "./kubeconfig.js";
export { createRetrier, type RetryOptions, type Retrier } from "./retry.js";
export { rbacRule, describeCall, toFencelineError, type Call } from "./errors.js";
/** The standard client, for callers that want to talk to the API directly (tests, tools). */
export { KubeConfig, CoreV1Api, StorageV1Api, VersionApi, loadAllYaml } from "@kubernetes/client-node";
