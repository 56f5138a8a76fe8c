export type { AuditRecord, ChartExport, ChartState, ChartTransition, Command, Info, NodeRow, Timeline, TimelineCommand, TimelineEntry } from "../src/wire";
