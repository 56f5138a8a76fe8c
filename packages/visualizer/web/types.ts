/** Shapes the page reads from the server (kept loose: the page must not break on an extra field). */

export type ChartState = { id: string; path: string; parent: string | null; initial: string | null; transient: boolean; description: string | null };
export type ChartTransition = { source: string; event: string; targets: string[]; guard: string | null; actions: string[] };
export type ChartExport = { id: string; policyVersion: string; states: ChartState[]; transitions: ChartTransition[] };

export type Command = { id: string; kind: string; epoch: number; issuedAt: number; deadline: number; params: Record<string, unknown> };

export type AuditRecord = {
  v: number;
  id: string;
  node: string;
  seq: number;
  at: number;
  event: { id: string; type: string; source: string };
  from: string;
  to: string;
  changed: boolean;
  epoch: number;
  commands: Command[];
  timers: { set: Record<string, number>; cleared: string[] };
  reason?: string;
  policyVersion: string;
};

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

export type TimelineCommand = {
  id: string;
  kind: string;
  epoch: number;
  issuedAt: number;
  deadline: number;
  params: unknown;
  result: { ok: boolean; reason: string | null; at: number; seq: number; latencyMs: number } | null;
};

export type TimelineEntry = {
  seq: number;
  at: number;
  event: { id: string; type: string; source: string };
  from: string;
  to: string;
  changed: boolean;
  epoch: number;
  reason: string | null;
  commands: TimelineCommand[];
  resultOf: string | null;
  policyVersion: string;
};

export type Timeline = {
  node: string;
  entries: TimelineEntry[];
  stays: Array<{ state: string; enteredAt: number; leftAt: number | null; durationMs: number; enteredBySeq: number }>;
  timeInState: Record<string, number>;
  transitions: number;
};

export type Info = { policyVersion: string; nats: string | null; startedAt: number; now: number; records: number; title: string };
