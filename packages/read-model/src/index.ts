export { readNodeSnapshots, type ReadSnapshotsOptions } from "./snapshots.js";
export { readEvents, readAuditRecords, readAudit } from "./streams.js";
