/**
 * What the HTTP API sends the page, defined once for the server and the page (which compiles
 * against this file without Node's types: type-only imports, nothing else).
 */
export type { AuditRecord } from "@fenceline/contracts";
export type { MachineExport as ChartExport, MachineStateNode as ChartState } from "@fenceline/statecharts";
export type { NodeTimeline as Timeline, TimelineEntry } from "@fenceline/read-model";

/** A row of the live node table (GET /api/snapshot). */
export type NodeRow = {
  node: string;
  state: string;
  since: number | null;
  epoch: number;
  lastSeq: number;
  hostGroup: string | null;
  bootId: string | null;
  note: string | null;
};

/** GET /api/info. */
export type Info = { policyVersion: string; nats: string | null; startedAt: number; now: number; records: number; title: string };
