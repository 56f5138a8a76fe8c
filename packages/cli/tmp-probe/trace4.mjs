import { startKubeControlPlane, startInformer } from "@fenceline/kube-lab";
import { createLogger } from "@fenceline/bus";
import { DEFAULT_POLICY } from "@fenceline/contracts";
import { startKubeLabFenceline } from "../dist/kube-lab-fleet.js";
const cp = await startKubeControlPlane({});
const t = () => Date.now();
let t0 = 0;
const lines = [];
const say = (s) => lines.push(`${((t() - t0) / 1000).toFixed(3).padStart(8)} ${s}`);
const fl = await startKubeLabFenceline({ admin: cp.admin, kubeconfig: cp.kubeconfig, name: "tr", nodes: Array.from({length:12},(_, i)=>`tr-${i+1}`), policy: DEFAULT_POLICY,
  workloads: { statefulSets: [{ name: "db", replicas: 4 }], daemonSet: true }, provisioner: { run: async () => ({ ok: true, output: "" }) }, log: createLogger("x", { level: "silent" }), rebootMs: 1000, conditionDurationMs: 30000,
  onAudit: (r) => t0 && r.changed && say(`audit ${r.node} ${r.from}->${r.to} ${r.event.type} at=${((r.at - t0)/1000).toFixed(3)} cmds=${r.commands.map(c=>c.kind).join(",")} timers=${JSON.stringify(Object.fromEntries(Object.entries(r.timers.set).map(([k,v])=>[k,((v-t0)/1000).toFixed(3)])))} ${r.reason??""}`) });
startInformer(cp.admin, "/api/v1/namespaces/tr/pods", { labelSelector: "app=db" }, (c) => t0 && say(`pod ${c.type} ${c.object.metadata.name} uid=${c.object.metadata.uid.slice(0,6)} node=${c.object.spec.nodeName} phase=${c.object.status?.phase} del=${!!c.object.metadata.deletionTimestamp} ready=${(c.object.status?.conditions??[]).find(x=>x.type==="Ready")?.status}`));
startInformer(cp.admin, "/apis/storage.k8s.io/v1/volumeattachments", undefined, (c) => t0 && say(`va ${c.type} ${c.object.spec.nodeName} ${c.object.spec.source.persistentVolumeName} attached=${c.object.status?.attached} del=${!!c.object.metadata.deletionTimestamp}`));

await new Promise(r => setTimeout(r, 3000));
t0 = t();
for (const rep of fl.machines.replicas()) { const victim = rep.runningOn[0]; await new Promise(r => setTimeout(r, Math.random()*2000)); say(`crash ${victim} (${rep.replica})`); await fl.fleet.crash(victim); }
await new Promise(r => setTimeout(r, 32000));
console.log(lines.join("\n"));
await fl.stop(); await cp.stop();
process.exit(0);
