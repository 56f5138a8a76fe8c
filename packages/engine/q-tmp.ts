import { DEMO_POLICY, createEvent } from "@fenceline/contracts";
import { createDecider, fold } from "@fenceline/engine";
const d = createDecider(DEMO_POLICY);
let snap = null as any;
const N = 100000;
const evs = [];
for (let i = 0; i < N; i++) evs.push(createEvent("heartbeat.resumed", { id: "e"+i, node: "n1", at: 1000+i, source: "x", data: { bootId: "b1", incarnation: 0 } }));
for (let r = 0; r < 3; r++) {
const t = performance.now();
for (let i = 0; i < N; i++) snap = fold(d, snap, evs[i], i+1).snapshot;
const el = performance.now()-t;
console.log(N / el * 1000, "ev/s");
}
