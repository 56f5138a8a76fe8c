import { chromium } from "playwright-core";
import { DEFAULT_POLICY } from "@fenceline/contracts";
import { exportMachine } from "@fenceline/statecharts";
import { commandResultsOf, nodeTimeline } from "@fenceline/engine";
import { startVisualizerServer } from "@fenceline/visualizer";
import { HistoryGenerator } from "../packages/cli/src/bench/history.ts";
const start = Date.now() - 20 * 60_000;
const g = new HistoryGenerator({ nodes: 12, seed: 3, start, incidentEveryMs: 240_000 });
const items = [];
for (;;) { const [i] = g.next(1); if (!i || i.event.at > Date.now()) break; items.push(i); }
const records = items.map((i) => i.audit);
const events = items.map(({ event, seq }) => ({ event, seq }));
const ui = await startVisualizerServer({ source: {
  statechart: () => exportMachine(DEFAULT_POLICY), loadAudit: async () => records, subscribeAudit: () => () => {},
  snapshot: async () => [], timeline: async (node, recs) => nodeTimeline(node, recs, commandResultsOf(events.filter(e => e.event.node === node)), Date.now()),
  info: () => ({ policyVersion: "1", nats: "nats://example:4222" }) } });
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu"] });
const page = await browser.newPage({ viewport: { width: Number(process.env.W ?? 1440), height: 900 } });
page.on("console", (m) => console.log("console:", m.text()));
page.on("pageerror", (e) => console.log("pageerror:", e.message));
await page.goto(ui.url + (process.env.Q ?? ""));
await page.waitForSelector("#statechart[data-ready]");
await page.waitForTimeout(500);
if (process.env.NODE_CLICK) { await page.click(`#nodes-body tr[data-node="${process.env.NODE_CLICK}"]`); await page.waitForTimeout(500); }
await page.evaluate(() => window.scrollTo(0, 0));
await page.screenshot({ path: process.env.OUT ?? "/tmp/flbench/dev.png", fullPage: true });
if (process.env.CLIP) { const [x, y, width, height] = process.env.CLIP.split(",").map(Number); await page.screenshot({ path: "/tmp/flbench/clip.png", clip: { x, y, width, height } }); }
console.log(records.length, "records");
await browser.close(); await ui.close();
