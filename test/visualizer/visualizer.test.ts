import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "@nats-io/transport-node";
import { chromium, type Browser, type Page } from "playwright-core";
import type { AuditRecord } from "@fenceline/contracts";
import { connectNats, startNatsServer, type NatsServer } from "@fenceline/bus";
import type { VisualizerServer } from "@fenceline/visualizer";
import { runDemo, startUi, type RunningDemo } from "@fenceline/cli";
import { readAuditRecords } from "@fenceline/read-model";

/**
 * The visualizer in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core;
 * never a downloaded browser) against a running crash demo: the page loads offline, draws every
 * state, follows a fault injected live, opens a node's timeline and replays the past with the
 * scrubber. Takes the page's screenshots into .test-results/screenshots, or into the folder
 * FENCELINE_SCREENSHOTS (set it to docs/img to refresh the docs' pictures), so a test run leaves
 * the tracked files alone.
 */
const CHROMIUM = "/usr/bin/chromium";
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SCREENSHOTS = resolve(ROOT, process.env.FENCELINE_SCREENSHOTS ?? join(".test-results", "screenshots"));
const SCREENSHOT = join(SCREENSHOTS, "visualizer.png");
const STATECHART_SHOT = join(SCREENSHOTS, "statechart.png");
const WEB = join(ROOT, "packages", "visualizer", "dist", "web", "index.html");
const TOP_STATES = ["healthy", "suspect", "recovered", "fencing", "remediating", "rejoining", "paused", "operator"];

describe("the visualizer in headless Chromium", () => {
  // npm test installs chromium and builds the page first; their absence is a failure, not a skip.
  it("has Debian's chromium and the built page", () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing (apt-get install chromium)`).toBe(true);
    expect(existsSync(WEB), `${WEB} is missing (pnpm exec turbo run build --filter=@fenceline/visualizer)`).toBe(true);
  });

  let server: NatsServer;
  let demo: RunningDemo;
  let nc: NatsConnection;
  let ui: VisualizerServer;
  let browser: Browser;
  let page: Page;
  let crashed = "";
  const external: string[] = [];

  beforeAll(async () => {
    server = await startNatsServer();
    demo = await runDemo({ nodes: 5, scenario: "crash", server: server.url });
    expect(demo.summary.ok).toBe(true);
    crashed = demo.summary.faults[0]!.node;
    nc = await connectNats(server.url, { name: "visualizer-test" });
    ui = await startUi({ nc, natsUrl: server.url, port: 0 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    // The page must work offline: record any request that leaves the UI server.
    page.on("request", (req) => {
      if (!req.url().startsWith(ui.url) && !req.url().startsWith("data:")) external.push(req.url());
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await ui?.close();
    await nc?.close();
    await demo?.stop();
    await server?.stop();
  });

  it("loads and draws every state of the statechart, with the node counts", async () => {
    await page.goto(ui.url);
    await page.waitForSelector("#statechart[data-ready]", { timeout: 15_000 });
    for (const s of TOP_STATES) expect(await page.locator(`g.state[data-state="${s}"]`).count(), s).toBe(1);
    expect(await page.locator("g.state").count()).toBeGreaterThanOrEqual(20);
    expect(await page.locator("path.edge").count()).toBeGreaterThan(15);
    await expect.poll(() => page.getAttribute('g.state[data-state="healthy"]', "data-count")).toBe("5");
    expect(external).toEqual([]);
  });

  it("the table shows every node, filterable", async () => {
    await expect.poll(() => page.locator("#nodes-body tr[data-node]").count()).toBe(5);
    expect(await page.locator('#nodes-body tr[data-state="healthy"]').count()).toBe(5);
    await page.fill("#filter", crashed);
    await expect.poll(() => page.locator("#nodes-body tr[data-node]").count()).toBeLessThan(5);
    expect(await page.locator(`#nodes-body tr[data-node="${crashed}"]`).count()).toBe(1);
    await page.fill("#filter", "");
    await page.selectOption("#state-filter", "fencing");
    await expect.poll(() => page.locator("#nodes-body tr[data-node]").count()).toBe(0);
    await page.selectOption("#state-filter", "");
    await expect.poll(() => page.locator("#nodes-body tr[data-node]").count()).toBe(5);
  });

  let victim = "";
  it("follows a fault injected live: the table and the diagram move within seconds", async () => {
    victim = demo.fleet.nodes.find((n) => n !== crashed && demo.fleet.status(n).power === "up")!;
    await demo.fleet.crash(victim);
    await expect
      .poll(() => page.getAttribute(`#nodes-body tr[data-node="${victim}"]`, "data-state"), { timeout: 8_000 })
      .toMatch(/^(suspect|fencing|remediating)/);
    const suspectOrLater = async () => {
      let n = 0;
      for (const s of ["suspect", "fencing", "remediating"])
        n += Number((await page.getAttribute(`g.state[data-state="${s}"]`, "data-count")) ?? 0);
      return n;
    };
    await expect.poll(suspectOrLater, { timeout: 8_000 }).toBe(1);
    // Let it reach fencing or beyond, so the picture shows a remediation in progress.
    await expect
      .poll(() => page.getAttribute(`#nodes-body tr[data-node="${victim}"]`, "data-state"), { timeout: 10_000 })
      .toMatch(/^(fencing|remediating)/);
  });

  it("opens a node's timeline: every transition with its event, commands and results, and the time in each state", async () => {
    await page.click(`#nodes-body tr[data-node="${crashed}"]`);
    await page.waitForSelector("#timeline-body tr[data-seq]");
    const audit = (await readAuditRecords(nc)).filter((r) => r.node === crashed);
    await expect.poll(() => page.locator("#timeline-body tr[data-seq]").count()).toBeGreaterThanOrEqual(audit.length);
    // biome-ignore lint/performance/useDomNodeTextContent: Playwright's innerText (the rendered text), not the DOM property
    const text = await page.locator("#timeline-body").innerText();
    for (const s of [
      "heartbeat.missed",
      "timer.fired",
      "command.result",
      "fencing",
      "remediating",
      "rejoining",
      "slot.acquire",
      "reprovision",
    ])
      expect(text).toContain(s);
    expect(await page.locator("#timeline-body .chip.ok").count()).toBeGreaterThan(3);
    expect(await page.locator("#timeline-stays .stay").count()).toBe(audit.filter((r) => r.changed).length);
  });

  it("serves /metrics and the JSON API next to the page", async () => {
    const metrics = await (await fetch(`${ui.url}metrics`)).text();
    expect(metrics).toMatch(/fenceline_nodes\{state="healthy"\} [34]/);
    expect(metrics).toContain('fenceline_transitions_total{from="suspect.requestingSlot",to="fencing"}');
    const chart = (await (await fetch(`${ui.url}api/statechart`)).json()) as { states: Array<{ path: string }> };
    expect(chart.states.map((s) => s.path)).toEqual(expect.arrayContaining(TOP_STATES));
    const since = (await (await fetch(`${ui.url}api/audit?since=0`)).json()) as AuditRecord[];
    expect(since.length).toBeGreaterThan(20);
    const later = (await (await fetch(`${ui.url}api/audit?since=${since[10]!.seq}`)).json()) as AuditRecord[];
    expect(later[0]!.seq).toBeGreaterThan(since[10]!.seq);
  });

  it("the fleet chart plots the nodes per state over time", async () => {
    expect(await page.locator('#fleet-chart path[data-phase="healthy"]').count()).toBe(1);
    expect(await page.locator('#fleet-chart path[data-phase="fencing"]').count()).toBe(1);
  });

  it("takes the screenshots the docs show", async () => {
    await page.waitForTimeout(300);
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(existsSync(SCREENSHOT)).toBe(true);
    // The overview alone, at its natural size (the page scales it to the panel's width).
    await page.locator("#statechart svg.statechart-svg").screenshot({ path: STATECHART_SHOT });
    expect(existsSync(STATECHART_SHOT)).toBe(true);
  });

  it("the scrubber replays the past: the fleet as it was, at the start and mid-fault", async () => {
    const audit: AuditRecord[] = await readAuditRecords(nc);
    const first = audit[0]!.at;
    const setScrubber = (t: number) =>
      page.evaluate((offset) => {
        const range = document.getElementById("scrubber") as HTMLInputElement;
        range.value = String(offset);
        range.dispatchEvent(new Event("input", { bubbles: true }));
      }, t - first);

    // At the start: every node is in its earliest state (or not seen yet).
    await setScrubber(first);
    await expect.poll(() => page.getAttribute("#status", "data-mode")).toBe("history");
    // What the page shows at time t: each node's latest record (by sequence) stamped at or
    // before t. Event times come from different processes, so a node's records are not always
    // in time order (a heartbeat stamped a few ms before the join that preceded it). A record in
    // the very same millisecond as the scrubber may show either way.
    const stateAt = (node: string, t: number) =>
      audit.filter((r) => r.node === node && r.at <= t).reduce<AuditRecord | null>((a, r) => (!a || r.seq > a.seq ? r : a), null)?.to ??
      "new";
    const earliest = new Map<string, string[]>();
    for (const r of audit) if (!earliest.has(r.node)) earliest.set(r.node, [stateAt(r.node, first), stateAt(r.node, first - 1)]);
    const readRows = () =>
      page
        .locator("#nodes-body tr[data-node]")
        .evaluateAll((trs) => trs.map((tr) => [tr.getAttribute("data-node"), tr.getAttribute("data-state")]));
    // The table re-renders after the mode switch: wait until it shows the past.
    await expect.poll(async () => (await readRows()).every(([node, s]) => earliest.get(node!)?.includes(s!) === true)).toBe(true);
    const rows = await readRows();
    expect(rows).toHaveLength(5);
    for (const [node, s] of rows) expect(earliest.get(node!), node!).toContain(s);

    // While the first crashed node was being fenced, it shows as fencing in the table and the diagram.
    const fencing = audit.find((r) => r.node === crashed && r.changed && r.to === "fencing")!;
    await setScrubber(fencing.at + 1);
    await expect.poll(() => page.getAttribute(`#nodes-body tr[data-node="${crashed}"]`, "data-state")).toBe("fencing");
    expect(Number(await page.getAttribute('g.state[data-state="fencing"]', "data-count"))).toBeGreaterThanOrEqual(1);
    expect(await page.locator("#timeline-body tr.future").count()).toBeGreaterThan(0);

    // Back to live.
    await page.click("#live");
    await expect.poll(() => page.getAttribute("#status", "data-mode")).toBe("live");
    expect(await page.getAttribute(`#nodes-body tr[data-node="${crashed}"]`, "data-state")).toBe("healthy");
  });
});
