export { startControlPlane, type ControlPlane, type ControlPlaneOptions } from "./control-plane.js";
