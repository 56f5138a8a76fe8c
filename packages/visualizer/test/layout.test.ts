import ELK from "elkjs/lib/elk.bundled.js";
import { describe, expect, it } from "vitest";
import { DEFAULT_POLICY, DEMO_POLICY } from "@fenceline/contracts";
import { exportMachine } from "@fenceline/statecharts";
import { layoutCompound, layoutStatechart, type Layout } from "../web/layout";
import { layoutQuality } from "../web/layout-quality";
import type { ChartExport } from "../web/types";

const elk = new ELK();

describe("statechart layout", () => {
  for (const policy of [DEFAULT_POLICY, DEMO_POLICY]) {
    const chart = exportMachine(policy) as unknown as ChartExport;

    it(`policy ${policy.version}: the overview has no arrow through a state, no label on a state or another label, at most 3 crossings`, async () => {
      const layout = await layoutStatechart(chart, elk);
      const q = layoutQuality(layout);
      expect(q.throughStates).toEqual([]);
      expect(q.labelOverlaps).toBe(0);
      expect(q.edgesThroughLabels).toBe(0);
      // 20 with one arrow per substate and ELK's model order (the layout before this one).
      expect(q.crossings).toBeLessThanOrEqual(3);
      // Every transition between top-level states is drawn, on an arrow that runs forwards:
      // it starts on its source state's border and ends on its target's.
      const drawn = new Set(layout.edges.flatMap((e) => e.transitions.map((t) => `${t.from}|${t.event}|${t.guard}|${t.to}`)));
      const top = (p: string) => p.split(".")[0];
      const isState = (p: string) => chart.states.some((s) => s.path === p);
      for (const t of chart.transitions)
        for (const target of t.targets) {
          // A transition of the machine itself (any state) is a note on its target instead.
          if (!isState(t.source))
            expect(
              layout.inner[top(target)!]?.some((n) => n.startsWith(`from any state: ${t.event}`) && n.endsWith(`→ ${target}`)),
              `any state → ${target}`,
            ).toBe(true);
          else if (top(t.source) !== top(target))
            expect(drawn.has(`${t.source}|${t.event}|${t.guard}|${target}`), `${t.source} → ${target}`).toBe(true);
        }
      const box = (path: string) => layout.boxes.find((b) => b.path === path)!;
      const onBorder = (p: { x: number; y: number }, b: { x: number; y: number; w: number; h: number }) =>
        Math.min(Math.abs(p.x - b.x), Math.abs(p.x - b.x - b.w), Math.abs(p.y - b.y), Math.abs(p.y - b.y - b.h)) < 1.5;
      for (const e of layout.edges) {
        expect(onBorder(e.points[0]!, box(e.source)), `${e.source} → ${e.target} starts at ${e.source}`).toBe(true);
        expect(onBorder(e.points.at(-1)!, box(e.target)), `${e.source} → ${e.target} ends at ${e.target}`).toBe(true);
      }
      // Healthy comes first, the lifecycle reads left to right.
      expect(box("healthy").x).toBeLessThan(box("suspect").x);
      expect(box("suspect").x).toBeLessThan(box("fencing").x);
      expect(box("fencing").x).toBeLessThan(box("remediating").x);
      expect(box("remediating").x).toBeLessThan(box("rejoining").x);
    });

    it(`policy ${policy.version}: each compound state's detail has no crossing and no arrow through a state`, async () => {
      for (const compound of ["suspect", "remediating", "rejoining"]) {
        const q = layoutQuality(await layoutCompound(chart, compound, elk));
        expect(q.throughStates, compound).toEqual([]);
        expect(q.crossings, compound).toBe(0);
      }
    });
  }

  it("the measure sees an arrow through a state, a crossing and a label on a state", () => {
    const box = (path: string, x: number, y: number) => ({
      path,
      label: path,
      x,
      y,
      w: 100,
      h: 40,
      compound: false,
      transient: false,
      depth: 0,
      parent: null,
      initial: false,
      description: null,
    });
    const layout: Layout = {
      width: 500,
      height: 300,
      boxes: [box("a", 0, 0), box("b", 200, 0), box("c", 400, 0), box("d", 200, 200)],
      edges: [
        {
          id: "e0",
          source: "a",
          target: "c",
          points: [
            { x: 100, y: 20 },
            { x: 400, y: 20 },
          ],
          label: { x: 210, y: 5, w: 30, h: 10, lines: ["x"] },
          transitions: [],
        },
        {
          id: "e1",
          source: "b",
          target: "d",
          points: [
            { x: 250, y: 40 },
            { x: 250, y: 200 },
          ],
          label: null,
          transitions: [],
        },
        {
          id: "e2",
          source: "a",
          target: "d",
          points: [
            { x: 50, y: 40 },
            { x: 50, y: 100 },
            { x: 350, y: 100 },
            { x: 350, y: 200 },
          ],
          label: null,
          transitions: [],
        },
      ],
      inner: {},
    };
    const q = layoutQuality(layout);
    expect(q.throughStates).toEqual(["a → c through b"]);
    expect(q.crossings).toBe(1);
    expect(q.labelOverlaps).toBe(1);
    expect(q.bends).toBe(2);
  });
});
