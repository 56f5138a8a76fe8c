export { main } from "./main.js";
export { startControlPlane, type ControlPlane, type ControlPlaneOptions } from "./control-plane.js";
export { startSimFleetOnNats, type SimFleetOnNats, type SimFleetOnNatsOptions } from "./demo/sim-fleet-on-nats.js";
