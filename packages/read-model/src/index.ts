export { readNodeSnapshots, type ReadSnapshotsOptions } from "./snapshots.js";
export { readEvents, readAuditRecords, readAudit } from "./streams.js";
export { nodeTimeline, commandResultsOf, type NodeTimeline, type TimelineEntry, type TimelineCommand, type StateStay } from "./timeline.js";
