export type { AuditRecord, ChartExport, ChartState, Info, NodeRow, Timeline, TimelineEntry } from "../src/wire";
