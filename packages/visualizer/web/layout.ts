import type { ElkExtendedEdge, ElkNode } from "elkjs/lib/elk-api";
import type { ChartExport, ChartState } from "./types";

/** Where each state and transition of the statechart is drawn. Pure: runs in Node too (tests). */

type Box = {
  path: string;
  label: string;
  x: number;
  y: number;
  w: number;
  h: number;
  compound: boolean;
  transient: boolean;
  depth: number;
  parent: string | null;
  initial: boolean;
  description: string | null;
};

type EdgeLabel = { x: number; y: number; w: number; h: number; lines: string[] };

type Edge = {
  id: string;
  source: string;
  target: string;
  points: Array<{ x: number; y: number }>;
  label: EdgeLabel | null;
  /** Every transition drawn by this edge: event and guard. */
  transitions: Array<{ event: string; guard: string | null; from: string; to: string }>;
};

export type Layout = {
  width: number;
  height: number;
  boxes: Box[];
  edges: Edge[];
  /** Transitions not drawn as an arrow (into a state's own child, or back to itself), per state. */
  inner: Record<string, string[]>;
};

export type Measure = (text: string, fontPx: number, bold?: boolean) => number;

/** A rough width for when no canvas is at hand (DejaVu Sans averages ~0.56 em). */
const approximateMeasure: Measure = (text, fontPx, bold) => text.length * fontPx * (bold ? 0.62 : 0.56);

export const LABEL_FONT = 11.5;
export const LABEL_LINE = 14;
export const STATE_FONT = 14;
export const CHILD_FONT = 12.5;

type Elk = { layout(graph: ElkNode): Promise<ElkNode> };
export type { Elk };

const eventName = (e: string) => (e === "(always)" ? "always" : e);
const lineOf = (t: { event: string; guard: string | null }) => `${eventName(t.event)}${t.guard ? ` [${t.guard}]` : ""}`;

const isInside = (path: string, ancestor: string) => path.startsWith(`${ancestor}.`);

type Transition = { event: string; guard: string | null; from: string; to: string };

/**
 * Breaks a label into lines of at most `max` characters at ", " or spaces (a guard goes on its
 * own line when it does not fit; continuation lines are indented).
 */
function wrap(text: string, max: number): string[] {
  if (text.length <= max) return [text];
  const tokens = text.split(/(?<=, )|(?<= )(?=\[)|(?<=: )/);
  const lines: string[] = [];
  let line = "";
  for (const token of tokens) {
    if (line && (line + token).trimEnd().length > max) {
      lines.push(line.trimEnd());
      line = `  ${token}`;
    } else line += token;
  }
  if (line.trim()) lines.push(line.trimEnd());
  return lines;
}
type Group = { source: string; target: string; transitions: Transition[] };

/**
 * Label lines, compact: events sharing a source, target and guard on one line
 * ("heartbeat.resumed, node.joined [rebooted]"); an eventless transition shows as its guard
 * alone ("[fenceConfirmed]", or "(always)"); on an arrow drawn from or to a whole compound state
 * the substate it really leaves from or goes to is named first ("done: …"). A guarded transition
 * next to an unguarded one for the same event and target adds nothing to the picture.
 */
function labelLines(g: Group, maxChars = 22): string[] {
  const buckets = new Map<string, { via: string; guard: string | null; events: string[] }>();
  for (const t of g.transitions) {
    const shadowed =
      t.guard !== null && g.transitions.some((u) => u.guard === null && u.event === t.event && u.from === t.from && u.to === t.to);
    const guard = shadowed ? null : t.guard;
    const via = [t.from !== g.source ? t.from.split(".").pop() : null, t.to !== g.target ? `→ ${t.to.split(".").pop()}` : null]
      .filter(Boolean)
      .join(" ");
    const key = `${via}|${guard ?? ""}|${t.event === "(always)" ? "always" : "event"}`;
    const b = buckets.get(key) ?? { via, guard, events: [] };
    if (!b.events.includes(t.event)) b.events.push(t.event);
    buckets.set(key, b);
  }
  const lines: string[] = [];
  for (const b of buckets.values()) {
    const always = b.events.includes("(always)");
    const head = always ? (b.guard ? "" : "(always)") : b.events.join(", ");
    const guard = b.guard ? `[${b.guard}]` : "";
    const prefix = b.via ? `${b.via}: ` : "";
    lines.push(...wrap(`${prefix}${head}${head && guard ? " " : ""}${guard}`, maxChars));
  }
  return lines;
}

const BASE_OPTIONS: Record<string, string> = {
  "elk.algorithm": "layered",
  "elk.direction": "RIGHT",
  "elk.edgeRouting": "ORTHOGONAL",
  "elk.layered.spacing.nodeNodeBetweenLayers": "34",
  "elk.layered.spacing.edgeNodeBetweenLayers": "12",
  "elk.layered.spacing.edgeEdgeBetweenLayers": "8",
  "elk.spacing.nodeNode": "22",
  "elk.spacing.edgeEdge": "9",
  "elk.spacing.edgeNode": "12",
  "elk.spacing.edgeLabel": "3",
  "elk.edgeLabels.placement": "CENTER",
  "elk.layered.edgeLabels.sideSelection": "SMART_DOWN",
  "elk.layered.nodePlacement.strategy": "NETWORK_SIMPLEX",
  "elk.layered.considerModelOrder.strategy": "NODES_AND_EDGES",
  "elk.layered.cycleBreaking.strategy": "MODEL_ORDER",
  "elk.padding": "[top=14,left=14,bottom=14,right=14]",
  "elk.json.edgeCoords": "ROOT",
  "elk.json.shapeCoords": "ROOT",
};

/**
 * The overview's order comes from the arrows (see `backwards`), not from ELK's model order:
 * keeping the model order of nodes and edges within a layer costs about ten crossings here.
 */
const OVERVIEW_OPTIONS: Record<string, string> = {
  ...Object.fromEntries(
    Object.entries(BASE_OPTIONS).filter(
      ([k]) => !k.startsWith("elk.layered.considerModelOrder") && !k.startsWith("elk.layered.cycleBreaking"),
    ),
  ),
};

const ROW_H = 24;
const ROW_GAP = 5;

function edgesFor(groups: Group[], measure: Measure): ElkExtendedEdge[] {
  return groups.map((g, i) => {
    const lines = labelLines(g);
    return {
      id: `e${i}`,
      sources: [g.source],
      targets: [g.target],
      labels: [
        { text: lines.join("\n"), width: Math.max(...lines.map((l) => measure(l, LABEL_FONT))) + 8, height: lines.length * LABEL_LINE + 4 },
      ],
    };
  });
}

function readEdges(out: ElkNode, groups: Group[]): Edge[] {
  return ((out.edges ?? []) as ElkExtendedEdge[]).map((e) => {
    const g = groups[Number(e.id.slice(1))]!;
    const points: Array<{ x: number; y: number }> = [];
    for (const s of e.sections ?? []) points.push(s.startPoint, ...(s.bendPoints ?? []), s.endPoint);
    const l = e.labels?.[0];
    return {
      id: e.id,
      source: g.source,
      target: g.target,
      points,
      label: l ? { x: l.x ?? 0, y: l.y ?? 0, w: l.width ?? 0, h: l.height ?? 0, lines: (l.text ?? "").split("\n") } : null,
      transitions: g.transitions,
    };
  });
}

/**
 * The overview, laid out by ELK as one hierarchical graph (as Stately's visualizer does): the
 * top-level states, a compound state as a box holding its substates (each with its own count),
 * and one arrow per pair of top-level states, labelled with every transition it stands for (an
 * arrow that leaves from or goes to a substate names it: "done: heartbeat.resumed"). ELK routes
 * the arrows around the states and orders layers and nodes to keep crossings down; the layers
 * follow the machine's order of states (healthy first). Transitions inside a compound state are drawn by `layoutCompound`.
 */
export async function layoutStatechart(
  chart: ChartExport,
  elk: Elk,
  measure: Measure = approximateMeasure,
  options: Record<string, string> = {},
): Promise<Layout> {
  const states = chart.states;
  const byPath = new Map(states.map((s) => [s.path, s]));
  const top = states.filter((s) => s.parent === null);
  const kidsOf = (path: string) => states.filter((s) => s.parent === path);
  const topOf = (path: string) => path.split(".")[0]!;
  const inner: Record<string, string[]> = {};

  const grouped = new Map<string, Group>();
  for (const t of chart.transitions) {
    for (const target of t.targets) {
      if (!byPath.has(target)) continue;
      // On the machine itself (taken in every state): one note on the target, not an arrow from each state.
      if (!byPath.has(t.source)) {
        (inner[topOf(target)] ??= []).push(`from any state: ${lineOf(t)} → ${target}`);
        continue;
      }
      if (topOf(target) === topOf(t.source)) {
        (inner[topOf(t.source)] ??= []).push(
          `${t.source.split(".").slice(1).join(".") || t.source}: ${lineOf(t)} → ${target === t.source ? "itself" : target.split(".").pop()}`,
        );
        continue;
      }
      const source = topOf(t.source);
      const to = topOf(target);
      const key = `${source}→${to}`;
      const g = grouped.get(key) ?? { source, target: to, transitions: [] };
      if (!g.transitions.some((x) => x.event === t.event && x.guard === t.guard && x.from === t.source && x.to === target))
        g.transitions.push({ event: t.event, guard: t.guard, from: t.source, to: target });
      grouped.set(key, g);
    }
  }
  const groups = [...grouped.values()];

  const rowY = (i: number) => 36 + i * (ROW_H + ROW_GAP);
  const sizeOf = (s: ChartState) => {
    const kids = kidsOf(s.path);
    if (kids.length === 0) return { width: Math.max(112, measure(s.path, STATE_FONT, true) + 52), height: 46 };
    const widest = Math.max(measure(s.path, STATE_FONT, true) + 40, ...kids.map((k) => measure(k.path.split(".").pop()!, CHILD_FONT) + 56));
    return { width: Math.max(150, widest + 24), height: rowY(kids.length) + 6 };
  };
  const children: ElkNode[] = top.map((s) => ({ id: s.path, ...sizeOf(s) }));
  // The lifecycle reads forwards: an arrow back to an earlier state (in the machine's order) is
  // given to ELK reversed, so ELK breaks no cycle its own way, and turned round when read back.
  const order = new Map(top.map((s, i) => [s.path, i]));
  const backwards = (g: Group) => order.get(g.source)! > order.get(g.target)!;
  const edges = edgesFor(groups, measure).map((e, i) => (backwards(groups[i]!) ? { ...e, sources: e.targets, targets: e.sources } : e));

  const out = await elk.layout({ id: "root", layoutOptions: { ...OVERVIEW_OPTIONS, ...options }, children, edges });

  const boxes: Box[] = [];
  for (const c of out.children ?? []) {
    const s = byPath.get(c.id)!;
    const kids = kidsOf(s.path);
    const box: Box = {
      path: s.path,
      label: s.path,
      x: c.x ?? 0,
      y: c.y ?? 0,
      w: c.width ?? 0,
      h: c.height ?? 0,
      compound: kids.length > 0,
      transient: s.transient,
      depth: 0,
      parent: null,
      initial: s.path === "healthy",
      description: s.description,
    };
    boxes.push(box);
    kids.forEach((k, i) => {
      boxes.push({
        path: k.path,
        label: k.path.split(".").pop()!,
        x: box.x + 12,
        y: box.y + rowY(i),
        w: box.w - 24,
        h: ROW_H,
        compound: false,
        transient: k.transient,
        depth: 1,
        parent: s.path,
        initial: s.initial === k.path,
        description: k.description,
      });
    });
  }
  const laid = readEdges(out, groups);
  for (const e of laid) if (backwards(groups[Number(e.id.slice(1))]!)) e.points.reverse();
  return { width: out.width ?? 0, height: out.height ?? 0, boxes, edges: laid, inner };
}

/**
 * One compound state drawn in full: its substates and the transitions between them, plus where
 * it is entered from and left to (small outside markers), so the detail reads on its own.
 */
export async function layoutCompound(
  chart: ChartExport,
  compound: string,
  elk: Elk,
  measure: Measure = approximateMeasure,
  options: Record<string, string> = {},
): Promise<Layout> {
  const states = chart.states;
  const kids = states.filter((s) => s.parent === compound);
  const self = states.find((s) => s.path === compound);
  const inside = (p: string) => p === compound || isInside(p, compound);
  const grouped = new Map<string, Group>();
  const add = (source: string, target: string, t: Transition) => {
    const key = `${source}→${target}`;
    const g = grouped.get(key) ?? { source, target, transitions: [] };
    if (!g.transitions.some((x) => x.event === t.event && x.guard === t.guard && x.from === t.from && x.to === t.to)) g.transitions.push(t);
    grouped.set(key, g);
  };
  const outside = new Set<string>();
  const inner: Record<string, string[]> = {};
  for (const t of chart.transitions) {
    for (const target of t.targets) {
      const tr = { event: t.event, guard: t.guard, from: t.source, to: target };
      if (t.source === target) {
        (inner[t.source] ??= []).push(`${lineOf(t)} → itself`);
        continue;
      }
      if (inside(t.source) && inside(target)) {
        if (t.source === compound) add(`${compound}:any`, target, tr);
        else add(t.source, target, tr);
      } else if (inside(t.source) && t.source !== compound) {
        const out = `out:${target.split(".")[0]}`;
        outside.add(out);
        add(t.source, out, tr);
      }
    }
  }
  const groups = [...grouped.values()];
  const nodes: ElkNode[] = kids.map((k) => ({
    id: k.path,
    width: Math.max(96, measure(k.path.split(".").pop()!, CHILD_FONT) + 48),
    height: 34,
  }));
  if (groups.some((g) => g.source === `${compound}:any`))
    nodes.unshift({ id: `${compound}:any`, width: Math.max(120, measure(`any ${compound} state`, LABEL_FONT) + 20), height: 26 });
  if (self?.initial) nodes.unshift({ id: `${compound}:initial`, width: 14, height: 14 });
  for (const o of outside) nodes.push({ id: o, width: Math.max(90, measure(`→ ${o.slice(4)}`, CHILD_FONT, true) + 24), height: 30 });
  const edges = edgesFor(groups, measure);
  if (self?.initial) edges.push({ id: "init", sources: [`${compound}:initial`], targets: [self.initial] });
  const out = await elk.layout({
    id: "root",
    layoutOptions: { ...BASE_OPTIONS, "elk.layered.spacing.nodeNodeBetweenLayers": "30", ...options },
    children: nodes,
    edges,
  });
  const boxes: Box[] = [];
  for (const c of out.children ?? []) {
    const k = kids.find((x) => x.path === c.id);
    const pseudo = k ? null : c.id.startsWith("out:") ? "out" : c.id.endsWith(":initial") ? "initial" : "any";
    boxes.push({
      path: c.id,
      label: k ? k.path.split(".").pop()! : pseudo === "out" ? `→ ${c.id.slice(4)}` : pseudo === "any" ? `any ${compound} state` : "",
      x: c.x ?? 0,
      y: c.y ?? 0,
      w: c.width ?? 0,
      h: c.height ?? 0,
      compound: false,
      transient: k?.transient ?? false,
      depth: pseudo ? -1 : 1,
      parent: compound,
      initial: self?.initial === c.id,
      description: k?.description ?? null,
    });
  }
  const laid = readEdges({ ...out, edges: (out.edges ?? []).filter((e) => e.id !== "init") }, groups);
  const init = (out.edges ?? []).find((e) => e.id === "init") as ElkExtendedEdge | undefined;
  if (init) {
    const points: Array<{ x: number; y: number }> = [];
    for (const s of init.sections ?? []) points.push(s.startPoint, ...(s.bendPoints ?? []), s.endPoint);
    laid.push({ id: "init", source: `${compound}:initial`, target: self!.initial!, points, label: null, transitions: [] });
  }
  return { width: out.width ?? 0, height: out.height ?? 0, boxes, edges: laid, inner };
}
