import type { Layout } from "./layout";

/**
 * How readable a laid-out statechart is, counted from its geometry: arrows that cross each
 * other, arrow segments that run through a state that is neither their source nor their target
 * (nor a compound state holding one of them), arrow labels that overlap a state or another
 * label, and arrows drawn across another arrow's label. Pure; `packages/visualizer/test/layout.test.ts`
 * holds the layout to it.
 */
export type LayoutQuality = {
  edges: number;
  crossings: number;
  edgesThroughStates: number;
  throughStates: string[];
  labelOverlaps: number;
  edgesThroughLabels: number;
  /** Total length of the arrows and their number of bends. */
  length: number;
  bends: number;
};

type P = { x: number; y: number };
type Rect = { x: number; y: number; w: number; h: number };

const segmentsOf = (points: P[]) => points.slice(1).map((p, i) => [points[i]!, p] as const);

function cross(a: P, b: P, c: P, d: P): boolean {
  const o = (p: P, q: P, r: P) => Math.sign((q.x - p.x) * (r.y - p.y) - (q.y - p.y) * (r.x - p.x));
  const o1 = o(a, b, c);
  const o2 = o(a, b, d);
  const o3 = o(c, d, a);
  const o4 = o(c, d, b);
  // Proper crossings only: arrows that share an end point or run along each other do not count.
  return o1 * o2 < 0 && o3 * o4 < 0;
}

/** Whether the segment a–b enters the rectangle shrunk by `inset` (Liang–Barsky clipping). */
function segmentEntersRect(a: P, b: P, r: Rect, inset = 1): boolean {
  const x0 = r.x + inset;
  const x1 = r.x + r.w - inset;
  const y0 = r.y + inset;
  const y1 = r.y + r.h - inset;
  if (x1 <= x0 || y1 <= y0) return false;
  let t0 = 0;
  let t1 = 1;
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  for (const [p, q] of [
    [-dx, a.x - x0],
    [dx, x1 - a.x],
    [-dy, a.y - y0],
    [dy, y1 - a.y],
  ] as const) {
    if (p === 0) {
      if (q <= 0) return false;
      continue;
    }
    const t = q / p;
    if (p < 0) t0 = Math.max(t0, t);
    else t1 = Math.min(t1, t);
    if (t0 >= t1) return false;
  }
  return true;
}

const overlap = (a: Rect, b: Rect) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

export function layoutQuality(layout: Layout): LayoutQuality {
  const edges = layout.edges.filter((e) => e.points.length >= 2);
  let crossings = 0;
  for (let i = 0; i < edges.length; i++) {
    for (let j = i + 1; j < edges.length; j++) {
      for (const [a, b] of segmentsOf(edges[i]!.points))
        for (const [c, d] of segmentsOf(edges[j]!.points)) if (cross(a, b, c, d)) crossings++;
    }
  }
  // A state an arrow may touch: its own ends, their ancestors (an arrow from a substate leaves
  // through its compound state's border) and their children.
  const related = (box: string, end: string) =>
    box === end || end.startsWith(`${box}.`) || box.startsWith(`${end}.`) || end.startsWith(`${box}:`);
  const throughStates: string[] = [];
  for (const e of edges) {
    const hit = layout.boxes.filter(
      (box) =>
        !related(box.path, e.source) && !related(box.path, e.target) && segmentsOf(e.points).some(([a, b]) => segmentEntersRect(a, b, box)),
    );
    if (hit.length > 0) throughStates.push(`${e.source} → ${e.target} through ${hit.map((h) => h.path).join(", ")}`);
  }
  const labels = edges.flatMap((e) => (e.label ? [e.label] : []));
  let labelOverlaps = 0;
  for (let i = 0; i < labels.length; i++) {
    for (const box of layout.boxes) if (box.depth <= 0 && overlap(labels[i]!, box)) labelOverlaps++;
    for (let j = i + 1; j < labels.length; j++) if (overlap(labels[i]!, labels[j]!)) labelOverlaps++;
  }
  let edgesThroughLabels = 0;
  for (const e of edges) {
    for (const other of edges) {
      if (other === e || !other.label) continue;
      if (segmentsOf(e.points).some(([a, b]) => segmentEntersRect(a, b, other.label!, 1))) edgesThroughLabels++;
    }
  }
  const length = Math.round(
    edges.reduce((sum, e) => sum + segmentsOf(e.points).reduce((l, [a, b]) => l + Math.hypot(b.x - a.x, b.y - a.y), 0), 0),
  );
  const bends = edges.reduce((sum, e) => sum + Math.max(0, e.points.length - 2), 0);
  return {
    edges: edges.length,
    crossings,
    edgesThroughStates: throughStates.length,
    throughStates,
    labelOverlaps,
    edgesThroughLabels,
    length,
    bends,
  };
}
