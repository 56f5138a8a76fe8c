import ELK from "elkjs/lib/elk.bundled.js";
import { DEMO_POLICY } from "@fenceline/contracts";
import { exportMachine } from "@fenceline/statecharts";
import { layoutStatechart, LABEL_FONT } from "./web/layout.ts";
const chart = exportMachine(DEMO_POLICY) as any;
for (const sp of ["34", "26", "20"]) for (const nn of ["22", "14"]) {
const l = await layoutStatechart(chart, new (ELK as any)(), undefined, { "elk.layered.spacing.nodeNodeBetweenLayers": sp, "elk.spacing.nodeNode": nn });
console.log(sp, nn, Math.round(l.width), Math.round(l.height), "label px at 1364:", (LABEL_FONT * 1364 / l.width).toFixed(1));
}
