export { startVisualizerServer, DEFAULT_WEB_ROOT, type VisualizerSource, type VisualizerServer, type NodeRow } from "./server.js";
