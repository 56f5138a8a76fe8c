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
  KUBE_LAB_USER_AGENT,
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
export { startInformer, keyOf, type Informer, type InformerChange } from "./informer.js";
export {
  KubeletFleet,
  CSI_DRIVER,
  FLEET_LABEL,
  ZONE_LABEL,
  type KubeletFleetOptions,
  type Container,
  type BackendAttachment,
  type ReplicaTruth,
  type MachineEvent,
} from "./kubelet-fleet.js";
export {
  createNamespace,
  createStatefulSet,
  createDeployment,
  createDaemonSet,
  deleteNamespace,
  listPods,
  isRunningAndReady,
  type StatefulSetOptions,
} from "./workloads.js";
