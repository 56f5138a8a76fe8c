// The simulator runs on the one virtual clock (@fenceline/testing).
export { VirtualClock } from "@fenceline/testing";
export {
  InMemoryCluster,
  DEFAULT_SERVER_VERSION,
  DEFAULT_FORCE_DETACH_TIMEOUT_MS,
  type InMemoryClusterOptions,
} from "./cluster.js";
export type {
  PowerState,
  PodPhase,
  WorkloadKind,
  NodeView,
  PodView,
  ContainerView,
  VolumeAttachmentView,
  WorkloadView,
  ReplicaStatus,
  ClusterEvent,
  ClusterEventKind,
} from "./cluster-views.js";
export {
  checkInvariants,
  RunningTracker,
  type ClusterTruth,
  type InvariantName,
  type InvariantReport,
  type Violation,
  type ReplicaDowntime,
  type NodeRecovery,
} from "./invariants.js";
export { SimFleet, type FleetOptions, type Machines, type FleetEvent, type FaultKind, type PeerRound } from "./fleet.js";
export { createSwitchableTransport, type SwitchableTransport } from "./switchable-transport.js";
export {
  KubernetesApiServer,
  startKubernetesApiServer,
  parseLabelSelector,
  type KubernetesApiServerOptions,
  type FaultRule,
  type RequestRecord,
  type ResourceKind,
} from "./k8s-api/index.js";
export * from "./lab/index.js";
export {
  createSimBmcs,
  simBmcDevices,
  REAL_BMC_TIMING,
  SIM_BMC_FAULTS,
  SIM_BMC_PASSWORD,
  type SimBmcFault,
  type SimBmcTiming,
  type SimBmcs,
} from "./bmc/sim-bmc.js";
export {
  startIpmiSimBmc,
  ipmitool,
  freeUdpPort,
  ipmiSimAvailable,
  type IpmiSimBmc,
  type IpmiSimBmcOptions,
  type PoweredMachine,
} from "./bmc/ipmi-sim-bmc.js";
export { startSimFleetOnNats, type SimFleetOnNats, type SimFleetOnNatsOptions } from "./sim-fleet-on-nats.js";
