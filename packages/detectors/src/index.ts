export { createHeartbeatDetector, type HeartbeatDetector } from "./heartbeat-detector.js";
export { runHeartbeatDetector } from "./run-heartbeat-detector.js";
