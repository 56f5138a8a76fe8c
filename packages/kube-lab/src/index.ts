export {
  startKubeControlPlane,
  adminClient,
  writeKubeconfig,
  serviceAccountToken,
  kubeconfigYaml,
  CONTROLLERS,
  type KubeControlPlane,
  type KubeControlPlaneInfo,
  type KubeControlPlaneOptions,
} from "./control-plane.js";
export {
  createKubeClient,
  KubeApiError,
  isNotFound,
  isConflict,
  type KubeAccess,
  type KubeClient,
  type KubeList,
  type KubeObject,
  type Impersonation,
  type RequestOptions,
  type Watch,
  type WatchEvent,
} from "./kube-client.js";
export { applyObject, objectPath } from "./apply.js";
