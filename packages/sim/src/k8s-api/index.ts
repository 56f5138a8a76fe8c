export {
  KubernetesApiServer,
  startKubernetesApiServer,
  type KubernetesApiServerOptions,
  type FaultRule,
  type RequestRecord,
  type ResourceKind,
} from "./server.js";
export { parseLabelSelector } from "./selectors.js";
