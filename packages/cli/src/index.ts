export { main } from "./main.js";
// The composition root lives in @fenceline/control-plane; the CLI runs it (up, demo).
export { startControlPlane, type ControlPlane, type ControlPlaneOptions } from "@fenceline/control-plane";
export { startSimFleetOnNats, type SimFleetOnNats, type SimFleetOnNatsOptions } from "@fenceline/sim";
export { runDemo, type RunningDemo } from "./demo/run-demo.js";
export { startUi } from "./commands/ui.js";
export { choosePolicy } from "./commands/replay.js";
