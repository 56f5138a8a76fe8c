import ELK from "elkjs/lib/elk.bundled.js";
import "./style.css";
import { PHASE_COLOR, colorOf, tint } from "./colors";
import { countByState, fleetAt, fleetSeries, PHASES, phaseOf, type NodeView } from "./fleet";
import { drawFleetChart } from "./fleet-chart";
import { clock, dateTime, duration, el } from "./format";
import { layoutCompound, layoutStatechart, type Measure } from "./layout";
import { drawStatechart, type StatechartView } from "./statechart";
import type { AuditRecord, ChartExport, Info, NodeRow, Timeline, TimelineEntry } from "./types";

/** The page: everything is computed from the audit records the server streams. */

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const state = {
  info: null as Info | null,
  records: [] as AuditRecord[],
  seqs: new Set<number>(),
  rows: new Map<string, NodeRow>(),
  /** Server time minus page time. */
  offset: 0,
  live: true,
  /** The scrubber's time when not live. */
  at: 0,
  text: "",
  stateFilter: "" as string,
  selected: null as string | null,
  timeline: null as Timeline | null,
  transitionsOnly: false,
  chart: null as StatechartView | null,
  detail: null as StatechartView | null,
  compound: "",
  statechart: null as ChartExport | null,
  connected: false,
};

const now = () => Date.now() + state.offset;
const viewTime = () => (state.live ? now() : state.at);
const firstTime = () => state.records[0]?.at ?? now() - 60_000;

async function get<T>(path: string): Promise<T> {
  const res = await fetch(path, { cache: "no-store" });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

function addRecord(r: AuditRecord): boolean {
  if (state.seqs.has(r.seq)) return false;
  state.seqs.add(r.seq);
  const list = state.records;
  if (list.length === 0 || list.at(-1)!.seq < r.seq) list.push(r);
  else {
    let i = list.length - 1;
    while (i > 0 && list[i - 1]!.seq > r.seq) i--;
    list.splice(i, 0, r);
  }
  return true;
}

// ---------------------------------------------------------------- rendering

let pending = false;
let chartDirty = true;
function schedule(chart = false) {
  chartDirty ||= chart;
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    render();
  });
}

function render() {
  const t = viewTime();
  const views = fleetAt(state.records, t, state.rows.keys());
  const counts = countByState(views);
  state.chart?.update(counts, state.stateFilter || null);
  state.detail?.update(counts, state.stateFilter || null);
  renderTabs(counts);
  renderHeader(views);
  renderScrubber(t);
  renderTable(views, t);
  if (chartDirty || !state.live) renderFleetChart();
  chartDirty = false;
  markTimeline(t);
}

function renderHeader(views: NodeView[]) {
  const active = views.filter((v) => v.state !== "new");
  const attention = active.filter((v) => phaseOf(v.state) !== "healthy").length;
  const transitions = state.records.filter((r) => r.changed).length;
  $("meta").textContent =
    `policy ${state.info?.policyVersion ?? "?"} · ${active.length} nodes · ${attention} not healthy · ${transitions} transitions · ${state.records.length} audit records`;
  const status = $("status");
  status.dataset.mode = state.live ? (state.connected ? "live" : "offline") : "history";
  $("status-text").textContent = state.live ? (state.connected ? "live" : "reconnecting…") : `replaying ${dateTime(state.at)}`;
}

function renderScrubber(t: number) {
  const range = $<HTMLInputElement>("scrubber");
  const min = firstTime();
  const max = Math.max(now(), min + 1);
  range.min = "0";
  range.max = String(max - min);
  range.step = "1";
  if (document.activeElement !== range || state.live) range.value = String(Math.min(max, Math.max(min, t)) - min);
  $("scrub-time").textContent = `${dateTime(t)}`;
  $("scrub-ago").textContent = state.live ? "now" : `${duration(now() - t)} ago`;
  $("scrub-start").textContent = clock(min);
  $("scrub-end").textContent = clock(max);
  $("live").classList.toggle("on", state.live);
  range.closest(".scrubber")?.classList.toggle("history", !state.live);
}

function matches(v: NodeView, row: NodeRow | undefined): boolean {
  if (state.stateFilter && !(v.state === state.stateFilter || v.state.startsWith(`${state.stateFilter}.`))) return false;
  const q = state.text.trim().toLowerCase();
  if (!q) return true;
  const hay = `${v.node} ${v.state} ${v.last?.event.type ?? ""} ${v.last?.reason ?? ""} ${row?.hostGroup ?? ""}`.toLowerCase();
  return q.split(/\s+/).every((word) => hay.includes(word));
}

const MAX_ROWS = 400;

function statePill(path: string): HTMLElement {
  const color = colorOf(path);
  const pill = el("span", { class: "pill", title: path, style: `--c:${color};--bg:${tint(color, 0.14)}` });
  const [top, ...rest] = path.split(".");
  pill.append(el("b", { text: top ?? path }), rest.length > 0 ? el("span", { text: `.${rest.join(".")}` }) : "");
  return pill;
}

function renderTable(views: NodeView[], t: number) {
  const body = $("nodes-body");
  const rows = views.filter((v) => matches(v, state.rows.get(v.node)));
  const frag = document.createDocumentFragment();
  for (const v of rows.slice(0, MAX_ROWS)) {
    const row = state.rows.get(v.node);
    const tr = el("tr", {
      "data-node": v.node,
      "data-state": v.state,
      class: `${v.node === state.selected ? "selected" : ""}${v.state === "new" ? " unborn" : ""}`,
    });
    tr.append(
      el("td", { class: "node" }, el("span", { class: "dot", style: `background:${colorOf(v.state)}` }), v.node),
      el("td", {}, v.state === "new" ? el("span", { class: "muted", text: "not seen yet" }) : statePill(v.state)),
      el("td", { title: v.since ? `since ${dateTime(v.since)}` : "" }, v.since ? el("span", { text: `${duration(t - v.since)}` }) : "-"),
      el("td", { class: "num" }, String(v.epoch)),
      el(
        "td",
        {
          class: "last",
          title: v.last
            ? `#${v.last.seq} ${v.last.event.type} from ${v.last.event.source}${v.last.reason ? `\n${v.last.reason}` : ""}`
            : "",
        },
        v.last ? el("code", { text: v.last.event.type }) : "-",
        v.last ? el("small", { text: ` ${duration(t - v.last.at)} ago` }) : "",
      ),
      el("td", { class: "muted" }, row?.hostGroup ?? ""),
    );
    tr.addEventListener("click", () => void openTimeline(v.node));
    frag.append(tr);
  }
  body.replaceChildren(frag);
  const shown = Math.min(rows.length, MAX_ROWS);
  $("nodes-count").textContent = rows.length === views.length ? `${views.length} nodes` : `${rows.length} of ${views.length} nodes`;
  $("nodes-more").textContent = rows.length > shown ? `${rows.length - shown} more: narrow the filter` : "";
  if (rows.length === 0) body.append(el("tr", {}, el("td", { colspan: 6, class: "empty", text: "no node matches the filter" })));
}

function renderFleetChart() {
  const box = $("fleet-chart");
  const width = Math.max(320, box.clientWidth || 600);
  const from = firstTime();
  const to = Math.max(now(), from + 1);
  const series = fleetSeries(state.records, from, to, Math.min(400, Math.max(60, Math.floor(width / 2))));
  box.replaceChildren(
    drawFleetChart(series, {
      width,
      height: 260,
      cursor: state.live ? null : state.at,
      onPick: (t) => {
        state.live = false;
        state.at = t;
        schedule(true);
      },
    }),
  );
}

function renderLegend() {
  const legend = $("legend");
  legend.replaceChildren(
    ...PHASES.map((p) =>
      el(
        "button",
        { class: "legend-item", "data-filter": p, title: `show only ${p} nodes` },
        el("span", { class: "swatch", style: `background:${PHASE_COLOR[p]}` }),
        p,
      ),
    ),
  );
  legend.querySelectorAll("button").forEach((b) =>
    b.addEventListener("click", () => {
      setStateFilter(b.dataset.filter ?? "");
    }),
  );
  const fleetLegend = $("fleet-legend");
  fleetLegend.replaceChildren(
    ...PHASES.map((p) =>
      el("span", { class: "legend-item static" }, el("span", { class: "swatch", style: `background:${PHASE_COLOR[p]}` }), p),
    ),
  );
}

const elk = new ELK();
const direction = new URLSearchParams(location.search).get("layout") === "down" ? "DOWN" : "RIGHT";

/** Compound states (with substates), in lifecycle order. */
const compounds = () =>
  (state.statechart?.states ?? [])
    .filter((s) => s.parent === null && state.statechart!.states.some((k) => k.parent === s.path))
    .map((s) => s.path);

function renderTabs(counts: Map<string, number>) {
  const tabs = $("compound-tabs");
  if (tabs.childElementCount === 0) {
    for (const c of compounds()) {
      const b = el(
        "button",
        { class: "tab", "data-compound": c, style: `--c:${colorOf(c)}` },
        el("span", { class: "swatch", style: `background:${colorOf(c)}` }),
        c,
        el("span", { class: "tab-count" }),
      );
      b.addEventListener("click", () => void showCompound(c));
      tabs.append(b);
    }
  }
  tabs.querySelectorAll<HTMLButtonElement>("button[data-compound]").forEach((b) => {
    b.classList.toggle("on", b.dataset.compound === state.compound);
    const n = counts.get(b.dataset.compound!) ?? 0;
    b.querySelector(".tab-count")!.textContent = n > 0 ? String(n) : "";
  });
}

/** Draws one compound state's substates and inner transitions in full. */
async function showCompound(path: string) {
  if (!state.statechart || state.compound === path) return;
  state.compound = path;
  const layout = await layoutCompound(state.statechart, path, elk, measure);
  if (state.compound !== path) return;
  const view = drawStatechart(layout, (p) => setStateFilter(p));
  $("compound-chart").replaceChildren(view.element);
  state.detail = view;
  schedule();
}

function setStateFilter(path: string) {
  const top = path.split(".")[0]!;
  if (compounds().includes(top)) void showCompound(top);
  state.stateFilter = state.stateFilter === path ? "" : path;
  const select = $<HTMLSelectElement>("state-filter");
  if (![...select.options].some((o) => o.value === state.stateFilter))
    select.append(el("option", { value: state.stateFilter, text: state.stateFilter }));
  select.value = state.stateFilter;
  schedule();
}

// ---------------------------------------------------------------- timeline

let timelineTimer: number | undefined;

async function openTimeline(node: string) {
  state.selected = node;
  const panel = $("timeline-panel");
  panel.hidden = false;
  $("timeline-title").textContent = node;
  await refreshTimeline();
  schedule();
  panel.scrollIntoView({ behavior: "smooth", block: "start" });
}

async function refreshTimeline() {
  const node = state.selected;
  if (!node) return;
  try {
    state.timeline = await get<Timeline>(`/api/nodes/${encodeURIComponent(node)}/timeline`);
  } catch (err) {
    $("timeline-body").replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "empty", text: String(err) })));
    return;
  }
  if (state.selected === node) renderTimeline(state.timeline);
}

function commandChip(c: TimelineEntry["commands"][number]): HTMLElement {
  const result = c.result;
  const cls = result ? (result.ok ? "ok" : "failed") : "waiting";
  const text = result ? (result.ok ? `✓ ${duration(result.latencyMs)}` : `✗ ${result.reason ?? "failed"}`) : "… no result yet";
  return el(
    "span",
    {
      class: `chip ${cls}`,
      "data-command": c.id,
      title: `${c.id} (epoch ${c.epoch})\nissued ${dateTime(c.issuedAt)}, deadline ${dateTime(c.deadline)}\n${JSON.stringify(c.params)}${result ? `\nresult #${result.seq} at ${dateTime(result.at)}` : ""}`,
    },
    el("b", { text: c.kind }),
    el("span", { class: "result", text: ` ${text}` }),
  );
}

function renderTimeline(tl: Timeline) {
  const start = tl.stays[0]?.enteredAt ?? tl.entries[0]?.at ?? 0;
  const last = tl.entries.at(-1);
  const current = last ? last.to : "new";
  $("timeline-title").replaceChildren(el("span", { text: tl.node }), statePill(current));
  $("timeline-meta").textContent =
    `${tl.entries.length} events · ${tl.transitions} transitions · epoch ${last?.epoch ?? 0} · since ${dateTime(start)}`;

  // Time in each state: one bar, one segment per stay.
  const total = tl.stays.reduce((s, x) => s + x.durationMs, 0) || 1;
  const bar = el("div", { class: "stays-bar" });
  for (const s of tl.stays) {
    const pct = (100 * s.durationMs) / total;
    const seg = el("div", {
      class: "stay",
      style: `width:${Math.max(0.4, pct)}%;background:${colorOf(s.state)}`,
      title: `${s.state}: ${duration(s.durationMs)} (${clock(s.enteredAt, true)} → ${s.leftAt ? clock(s.leftAt, true) : "now"})`,
    });
    if (pct > 9) seg.append(el("span", { text: `${s.state.split(".").pop()} ${duration(s.durationMs)}` }));
    bar.append(seg);
  }
  const totals = el(
    "div",
    { class: "stay-totals" },
    ...Object.entries(tl.timeInState)
      .sort((a, b) => PHASES.indexOf(a[0] as never) - PHASES.indexOf(b[0] as never))
      .map(([p, ms]) =>
        el(
          "span",
          { class: "legend-item static" },
          el("span", { class: "swatch", style: `background:${colorOf(p)}` }),
          `${p} `,
          el("b", { text: duration(ms) }),
        ),
      ),
  );
  $("timeline-stays").replaceChildren(bar, totals);

  const body = $("timeline-body");
  const frag = document.createDocumentFragment();
  for (const e of tl.entries) {
    if (state.transitionsOnly && !e.changed) continue;
    const tr = el("tr", { "data-seq": e.seq, "data-at": e.at, class: e.changed ? "changed" : "same" });
    const move = e.changed
      ? el(
          "span",
          { class: "move" },
          e.from === "new" ? el("span", { class: "muted", text: "new" }) : statePill(e.from),
          el("span", { class: "arrow", text: " → " }),
          statePill(e.to),
        )
      : el("span", { class: "muted", text: `stays ${e.to}` });
    tr.append(
      el(
        "td",
        { class: "when", title: dateTime(e.at) },
        el("span", { text: clock(e.at, true) }),
        el("small", { text: ` +${duration(e.at - start)}` }),
      ),
      el(
        "td",
        {},
        el("code", { text: e.event.type }),
        el("small", { class: "muted", text: ` ${e.event.source}` }),
        e.resultOf ? el("div", { class: "muted small", text: `answers ${e.resultOf}` }) : "",
        el("div", { class: "muted small", text: `#${e.seq}` }),
      ),
      el("td", {}, move),
      el("td", { class: "cmds" }, ...e.commands.map(commandChip)),
      el("td", { class: "reason" }, e.reason ?? ""),
    );
    frag.append(tr);
  }
  body.replaceChildren(frag);
  markTimeline(viewTime());
}

function markTimeline(t: number) {
  if (!state.timeline) return;
  let marked = false;
  document.querySelectorAll<HTMLTableRowElement>("#timeline-body tr[data-at]").forEach((tr) => {
    const future = Number(tr.dataset.at) > t;
    tr.classList.toggle("future", future);
    tr.classList.toggle("now-line", future && !marked && !state.live);
    if (future) marked = true;
  });
}

// ---------------------------------------------------------------- wiring

function connect() {
  const since = state.records.at(-1)?.seq ?? 0;
  const source = new EventSource(`/api/events?since=${since}`);
  source.addEventListener("open", () => {
    state.connected = true;
    schedule();
  });
  source.addEventListener("error", () => {
    state.connected = false;
    schedule();
  });
  source.addEventListener("audit", (m) => {
    const r = JSON.parse((m as MessageEvent<string>).data) as AuditRecord;
    if (!addRecord(r)) return;
    if (r.node === state.selected) {
      window.clearTimeout(timelineTimer);
      timelineTimer = window.setTimeout(() => void refreshTimeline(), 250);
    }
    if (!state.rows.has(r.node)) void refreshRows();
    schedule(true);
  });
}

async function refreshRows() {
  try {
    const rows = await get<NodeRow[]>("/api/snapshot");
    for (const r of rows) state.rows.set(r.node, r);
    schedule();
  } catch {
    // keep the old rows
  }
}

function stepTo(direction: -1 | 1) {
  const t = viewTime();
  const changes = state.records.filter((r) => r.changed).map((r) => r.at);
  const target = direction < 0 ? changes.filter((x) => x < t - 1).at(-1) : changes.find((x) => x > t + 1);
  if (target === undefined) {
    if (direction > 0) state.live = true;
    schedule(true);
    return;
  }
  state.live = false;
  state.at = target;
  schedule(true);
}

function wire() {
  const range = $<HTMLInputElement>("scrubber");
  range.addEventListener("input", () => {
    const t = firstTime() + Number(range.value);
    if (t >= now() - 250) {
      state.live = true;
    } else {
      state.live = false;
      state.at = t;
    }
    schedule(true);
  });
  $("live").addEventListener("click", () => {
    state.live = true;
    schedule(true);
  });
  $("prev").addEventListener("click", () => stepTo(-1));
  $("next").addEventListener("click", () => stepTo(1));
  $("start").addEventListener("click", () => {
    state.live = false;
    state.at = firstTime();
    schedule(true);
  });
  $<HTMLInputElement>("filter").addEventListener("input", (e) => {
    state.text = (e.target as HTMLInputElement).value;
    schedule();
  });
  const select = $<HTMLSelectElement>("state-filter");
  select.append(el("option", { value: "", text: "all states" }), ...PHASES.map((p) => el("option", { value: p, text: p })));
  select.addEventListener("change", () => {
    state.stateFilter = select.value;
    schedule();
  });
  $("timeline-close").addEventListener("click", () => {
    state.selected = null;
    state.timeline = null;
    $("timeline-panel").hidden = true;
    schedule();
  });
  $<HTMLInputElement>("transitions-only").addEventListener("change", (e) => {
    state.transitionsOnly = (e.target as HTMLInputElement).checked;
    if (state.timeline) renderTimeline(state.timeline);
  });
  window.addEventListener("resize", () => schedule(true));
  // Relative times and the live end of the scrubber move with the clock.
  window.setInterval(() => schedule(state.live), 1_000);
}

const canvas = document.createElement("canvas").getContext("2d");
const measure: Measure = (text, px, bold) => {
  if (!canvas) return text.length * px * 0.56;
  canvas.font = `${bold ? 700 : 400} ${px}px ${getComputedStyle(document.body).fontFamily}`;
  return canvas.measureText(text).width;
};

async function boot() {
  wire();
  const [info, chart, rows, records] = await Promise.all([
    get<Info>("/api/info"),
    get<ChartExport>("/api/statechart"),
    get<NodeRow[]>("/api/snapshot"),
    get<AuditRecord[]>("/api/audit"),
  ]);
  state.info = info;
  state.offset = info.now - Date.now();
  for (const r of rows) state.rows.set(r.node, r);
  for (const r of records) addRecord(r);
  document.title = `${info.title} · ${info.policyVersion}`;
  $("nats").textContent = info.nats ? `NATS ${info.nats}` : "";
  renderLegend();
  connect();
  schedule(true);
  state.statechart = chart;
  try {
    const layout = await layoutStatechart(chart, elk, measure, { "elk.direction": direction });
    const view = drawStatechart(layout, (path) => setStateFilter(path));
    $("statechart").replaceChildren(view.element);
    state.chart = view;
    $("statechart").dataset.ready = "true";
    await showCompound(compounds().includes("remediating") ? "remediating" : (compounds()[0] ?? ""));
  } catch (err) {
    $("statechart").replaceChildren(el("p", { class: "empty", text: `cannot lay out the statechart: ${String(err)}` }));
  }
  schedule(true);
}

boot().catch((err: unknown) => {
  document.body.prepend(el("div", { class: "fatal", text: `Fenceline UI: ${String(err)}` }));
});
