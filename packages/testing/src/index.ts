export { VirtualClock, settle } from "./virtual-clock.js";
export { VirtualWatchdog, type VirtualWatchdogOptions, type WatchdogState } from "./virtual-watchdog.js";
export { HistoryGenerator, type HistoryItem, type HistoryOptions } from "./history.js";
