export { createActuators, startControlPlane, type ControlPlane, type ControlPlaneOptions } from "./control-plane.js";
export { createDryRunCluster, createDryRunProvisioner } from "./dry-run.js";
