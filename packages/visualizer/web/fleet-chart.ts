import { PHASE_COLOR, tint } from "./colors";
import { PHASES, type Series } from "./fleet";
import { clock, svg } from "./format";

/** Nodes per top-level state over time: a stacked area chart, with the scrubber's time as a line. */
export function drawFleetChart(
  series: Series,
  options: { width: number; height: number; cursor: number | null; onPick: (t: number) => void },
): SVGSVGElement {
  const { width, height } = options;
  const m = { left: 34, right: 12, top: 10, bottom: 24 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const t0 = series.times[0] ?? 0;
  const t1 = series.times.at(-1) ?? t0 + 1;
  const x = (t: number) => m.left + ((t - t0) / Math.max(1, t1 - t0)) * w;
  const ymax = Math.max(1, series.max);
  const y = (n: number) => m.top + h - (n / ymax) * h;
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "fleet-svg",
    role: "img",
    "aria-label": "nodes per state over time",
  });

  // Grid and axes.
  const ticks = niceTicks(ymax);
  for (const v of ticks) {
    root.append(svg("line", { x1: m.left, x2: m.left + w, y1: y(v), y2: y(v), stroke: "#eef0f3" }));
    const t = svg("text", { x: m.left - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 10, fill: "#868e96" });
    t.textContent = String(v);
    root.append(t);
  }
  const n = Math.max(2, Math.min(7, Math.floor(w / 110)));
  for (let i = 0; i < n; i++) {
    const t = t0 + ((t1 - t0) * i) / (n - 1);
    const label = svg("text", {
      x: x(t),
      y: height - 7,
      "text-anchor": i === 0 ? "start" : i === n - 1 ? "end" : "middle",
      "font-size": 10,
      fill: "#868e96",
    });
    label.textContent = clock(t);
    root.append(label);
  }

  // Stacked areas, as steps (states change at instants).
  const base = series.times.map(() => 0);
  for (const p of PHASES) {
    const values = series.counts[p]!;
    if (values.every((v) => v === 0)) continue;
    const top = values.map((v, i) => base[i]! + v);
    let d = "";
    series.times.forEach((t, i) => {
      const next = series.times[i + 1] ?? t;
      d += `${i === 0 ? "M" : "L"} ${x(t)} ${y(top[i]!)} L ${x(next)} ${y(top[i]!)} `;
    });
    for (let i = series.times.length - 1; i >= 0; i--) {
      const t = series.times[i]!;
      const next = series.times[i + 1] ?? t;
      d += `L ${x(next)} ${y(base[i]!)} L ${x(t)} ${y(base[i]!)} `;
    }
    const area = svg("path", {
      d: `${d}Z`,
      fill: tint(PHASE_COLOR[p]!, p === "healthy" ? 0.45 : 0.85),
      stroke: PHASE_COLOR[p],
      "stroke-width": 0.8,
      "data-phase": p,
    });
    const title = svg("title");
    title.textContent = p;
    area.append(title);
    root.append(area);
    top.forEach((v, i) => (base[i] = v));
  }
  root.append(svg("line", { x1: m.left, x2: m.left + w, y1: m.top + h, y2: m.top + h, stroke: "#ced4da" }));

  if (options.cursor !== null) {
    const cx = x(Math.min(t1, Math.max(t0, options.cursor)));
    root.append(
      svg("line", {
        x1: cx,
        x2: cx,
        y1: m.top - 4,
        y2: m.top + h,
        stroke: "#1f2937",
        "stroke-width": 1.5,
        "stroke-dasharray": "4 3",
        class: "cursor",
      }),
    );
  }
  const hit = svg("rect", { x: m.left, y: m.top, width: w, height: h, fill: "transparent", class: "chart-hit" });
  hit.addEventListener("click", (e) => {
    const box = root.getBoundingClientRect();
    const px = ((e.clientX - box.left) / box.width) * width;
    options.onPick(t0 + ((px - m.left) / w) * (t1 - t0));
  });
  root.append(hit);
  return root;
}

function niceTicks(max: number): number[] {
  const step =
    max <= 5
      ? 1
      : max <= 12
        ? 2
        : max <= 30
          ? 5
          : Math.pow(10, Math.floor(Math.log10(max))) * (max / Math.pow(10, Math.floor(Math.log10(max))) > 5 ? 2 : 1);
  const out: number[] = [];
  for (let v = 0; v <= max; v += step) out.push(v);
  return out;
}
