import { colorOf, tint } from "./colors";
import { svg } from "./format";
import { CHILD_FONT, LABEL_FONT, LABEL_LINE, STATE_FONT, type Layout } from "./layout";

/**
 * Draws the laid-out statechart as SVG: states as boxes (compound states contain their
 * substates), transitions as arrows labelled with their events and guards, and the number of
 * nodes in each state on a badge. `update` recolours the counts without redrawing.
 */
export type StatechartView = {
  element: SVGSVGElement;
  update(counts: Map<string, number>, selected: string | null): void;
};

export function drawStatechart(layout: Layout, onSelect: (path: string) => void): StatechartView {
  const { width, height } = layout;
  const root = svg("svg", {
    viewBox: `0 0 ${Math.ceil(width)} ${Math.ceil(height)}`,
    class: "statechart-svg",
    role: "img",
    "aria-label": "node lifecycle statechart",
  });
  root.style.setProperty("--natural-width", `${Math.ceil(width)}px`);
  const defs = svg("defs");
  defs.append(
    svg(
      "marker",
      { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#7b8494" }),
    ),
    svg(
      "marker",
      { id: "arrow-hot", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#1f2937" }),
    ),
  );
  root.append(defs);

  const boxLayer = svg("g", { class: "boxes" });
  const edgeLayer = svg("g", { class: "edges" });
  const labelLayer = svg("g", { class: "edge-labels" });
  root.append(boxLayer, edgeLayer, labelLayer);

  const badges = new Map<string, { g: SVGGElement; text: SVGTextElement; circle: SVGRectElement; box: SVGRectElement; top: boolean }>();
  const boxes = [...layout.boxes].sort((a, b) => a.depth - b.depth);
  for (const b of boxes) {
    if (b.depth < 0) {
      boxLayer.append(pseudoNode(b));
      continue;
    }
    const color = colorOf(b.path);
    const top = b.depth === 0;
    const g = svg("g", {
      class: `state${b.compound ? " compound" : ""}${b.transient ? " transient" : ""}`,
      "data-state": b.path,
      tabindex: 0,
    });
    const rect = svg("rect", {
      x: b.x,
      y: b.y,
      width: b.w,
      height: b.h,
      rx: top ? 10 : 7,
      fill: b.compound ? tint(color, 0.07) : "#ffffff",
      stroke: color,
      "stroke-width": top ? 2 : 1.5,
      "stroke-dasharray": b.transient ? "5 4" : null,
    });
    const title = svg("title");
    const inner = layout.inner[b.path] ?? [];
    title.textContent = [
      b.path,
      b.description,
      b.transient ? "transient: left at once by an eventless transition" : null,
      ...inner.map((t) => `also: ${t}`),
    ]
      .filter(Boolean)
      .join("\n");
    g.append(title, rect);
    const font = top ? STATE_FONT : CHILD_FONT;
    const label = svg("text", {
      x: b.compound ? b.x + 12 : b.x + 12,
      y: b.compound ? b.y + 21 : b.y + b.h / 2 + font * 0.36,
      "font-size": font,
      "font-weight": top ? 700 : 500,
      fill: top ? tint(color, 1) : "#1f2937",
      class: "state-label",
    });
    label.textContent = b.label;
    g.append(label);
    if (b.initial && b.parent) {
      g.append(svg("circle", { cx: b.x - 0.5, cy: b.y + b.h / 2, r: 3.2, fill: "#1f2937" }));
    }
    // Count badge, top right.
    const bw = 24;
    const badge = svg("g", { class: "count" });
    const bx = b.x + b.w - bw - (b.compound ? 10 : 6);
    const by = b.compound ? b.y + 8 : b.y + (b.h - 18) / 2;
    const circle = svg("rect", { x: bx, y: by, width: bw, height: 18, rx: 9, fill: "#f1f3f5", stroke: "none" });
    const text = svg("text", {
      x: bx + bw / 2,
      y: by + 13,
      "text-anchor": "middle",
      "font-size": 11.5,
      "font-weight": 700,
      fill: "#868e96",
    });
    text.textContent = "0";
    badge.append(circle, text);
    g.append(badge);
    g.addEventListener("click", (e) => {
      e.stopPropagation();
      onSelect(b.path);
    });
    g.addEventListener("mouseenter", () => highlight(b.path));
    g.addEventListener("mouseleave", () => highlight(null));
    g.addEventListener("keydown", (e) => {
      if ((e as KeyboardEvent).key === "Enter") onSelect(b.path);
    });
    boxLayer.append(g);
    badges.set(b.path, { g, text, circle, box: rect, top });
  }

  for (const e of layout.edges) {
    if (e.points.length < 2) continue;
    const d = roundedPath(e.points, 6);
    const path = svg("path", {
      d,
      fill: "none",
      stroke: "#9aa3b2",
      "stroke-width": 1.3,
      "marker-end": "url(#arrow)",
      class: "edge",
      "data-source": e.source,
      "data-target": e.target,
    });
    const title = svg("title");
    title.textContent = e.transitions.map((t) => `${t.from} → ${t.to}: ${t.event}${t.guard ? ` [${t.guard}]` : ""}`).join("\n");
    path.append(title);
    edgeLayer.append(path);
    if (e.label) {
      const lg = svg("g", { class: "edge-label", "data-source": e.source, "data-target": e.target });
      lg.append(
        svg("rect", { x: e.label.x - 2, y: e.label.y - 1, width: e.label.w + 2, height: e.label.h, rx: 3, fill: "rgba(255,255,255,0.88)" }),
      );
      e.label.lines.forEach((line, i) => {
        const guard = line.trimStart().startsWith("[");
        const t = svg("text", {
          x: e.label!.x + 1,
          y: e.label!.y + LABEL_LINE * (i + 1) - 2,
          "font-size": guard ? LABEL_FONT - 1 : LABEL_FONT,
          fill: guard ? "#6b7280" : "#374151",
          "font-style": guard ? "italic" : null,
        });
        t.textContent = line;
        lg.append(t);
      });
      const title2 = svg("title");
      title2.textContent = title.textContent;
      lg.append(title2);
      labelLayer.append(lg);
    }
  }

  /** Brings a state's own arrows forward (and fades the others) while it is hovered. */
  function highlight(path: string | null) {
    root.classList.toggle("hovering", path !== null);
    const mine = (p: string | null) => p !== null && path !== null && (p === path || p.startsWith(`${path}.`) || p.startsWith(`${path}:`));
    root.querySelectorAll<SVGElement>("[data-source]").forEach((e) => {
      const hot = mine(e.getAttribute("data-source")) || mine(e.getAttribute("data-target"));
      e.classList.toggle("hot", hot);
      if (e.tagName === "path") e.setAttribute("marker-end", hot ? "url(#arrow-hot)" : "url(#arrow)");
    });
  }

  return {
    element: root,
    update(counts, selected) {
      for (const [path, b] of badges) {
        const n = counts.get(path) ?? 0;
        const color = colorOf(path);
        b.text.textContent = String(n);
        b.g.setAttribute("data-count", String(n));
        b.text.setAttribute("fill", n > 0 ? "#ffffff" : "#adb5bd");
        b.circle.setAttribute("fill", n > 0 ? color : "#f1f3f5");
        b.g.classList.toggle("occupied", n > 0);
        b.g.classList.toggle("selected", selected === path);
        const compound = b.g.classList.contains("compound");
        if (!compound) b.box.setAttribute("fill", n > 0 ? tint(color, 0.16) : "#ffffff");
        else b.box.setAttribute("fill", n > 0 ? tint(color, 0.1) : tint(color, 0.04));
      }
    },
  };
}

/** The markers of a compound's detail: its initial dot, "any substate", and where it is left to. */
function pseudoNode(b: Layout["boxes"][number]): SVGGElement {
  const g = svg("g", { class: "pseudo" });
  if (b.path.endsWith(":initial")) {
    g.append(svg("circle", { cx: b.x + b.w / 2, cy: b.y + b.h / 2, r: 6, fill: "#1f2937" }));
    return g;
  }
  const out = b.path.startsWith("out:");
  const color = out ? colorOf(b.path.slice(4)) : "#868e96";
  g.append(
    svg("rect", {
      x: b.x,
      y: b.y,
      width: b.w,
      height: b.h,
      rx: b.h / 2,
      fill: out ? tint(color, 0.12) : "#f8f9fa",
      stroke: color,
      "stroke-dasharray": "4 3",
    }),
  );
  const t = svg("text", {
    x: b.x + b.w / 2,
    y: b.y + b.h / 2 + 4.3,
    "text-anchor": "middle",
    "font-size": out ? CHILD_FONT : LABEL_FONT,
    "font-weight": out ? 700 : 400,
    fill: out ? color : "#495057",
  });
  t.textContent = b.label;
  g.append(t);
  return g;
}

/** An orthogonal polyline with rounded corners. */
function roundedPath(points: Array<{ x: number; y: number }>, r: number): string {
  let d = `M ${points[0]!.x} ${points[0]!.y}`;
  for (let i = 1; i < points.length - 1; i++) {
    const p = points[i - 1]!;
    const c = points[i]!;
    const n = points[i + 1]!;
    const d1 = Math.hypot(c.x - p.x, c.y - p.y);
    const d2 = Math.hypot(n.x - c.x, n.y - c.y);
    const k = Math.min(r, d1 / 2, d2 / 2);
    const a = { x: c.x - ((c.x - p.x) / (d1 || 1)) * k, y: c.y - ((c.y - p.y) / (d1 || 1)) * k };
    const b = { x: c.x + ((n.x - c.x) / (d2 || 1)) * k, y: c.y + ((n.y - c.y) / (d2 || 1)) * k };
    d += ` L ${a.x} ${a.y} Q ${c.x} ${c.y} ${b.x} ${b.y}`;
  }
  const last = points.at(-1)!;
  return `${d} L ${last.x} ${last.y}`;
}
