import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_POLICY, type AuditRecord } from "@fenceline/contracts";
import { connectNats, startNatsServer, type NatsServer } from "@fenceline/bus";
import { choosePolicy, runDemo } from "@fenceline/cli";
import { readAuditRecords } from "@fenceline/read-model";
import { runMain } from "./run-main.js";

/**
 * A real history: the crash demo (5 nodes) on our own nats-server; the demo is stopped, the
 * server kept, and `fenceline replay` runs against its FL_EVENTS and FL_AUDIT.
 */
describe("fenceline replay against a recorded demo", () => {
  let server: NatsServer;
  let audit: AuditRecord[] = [];
  let crashed = "";
  const dir = mkdtempSync(join(tmpdir(), "fenceline-replay-"));

  beforeAll(async () => {
    server = await startNatsServer();
    const demo = await runDemo({ nodes: 5, scenario: "crash", server: server.url });
    expect(demo.summary.ok).toBe(true);
    crashed = demo.summary.faults[0]!.node;
    await demo.stop();
    const nc = await connectNats(server.url, { name: "replay-test" });
    audit = await readAuditRecords(nc);
    await nc.close();
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
  });

  it("--verify passes on an untouched history (exit 0)", async () => {
    const r = await runMain(["replay", "--verify", "--server", server.url]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain("OK: every transition matches the audit");
    expect(r.stdout).toContain(`policy built-in "demo-1"`);
    const j = await runMain(["replay", "--verify", "--json", "--server", server.url]);
    const report = JSON.parse(j.stdout) as { ok: boolean; events: number; compared: number; divergenceCount: number; nodes: number };
    expect(report).toMatchObject({ ok: true, divergenceCount: 0, nodes: 5 });
    expect(report.compared).toBe(audit.length);
  });

  it("--verify folds with xstate's own transition() unless --interpreter fast asks for the lean one, and says which", async () => {
    const reference = await runMain(["replay", "--verify", "--server", server.url]);
    expect(reference.stdout).toContain("interpreter xstate (xstate's own transition())");
    const lean = await runMain(["replay", "--verify", "--interpreter", "fast", "--server", server.url]);
    expect(lean.code, lean.stdout + lean.stderr).toBe(0);
    expect(lean.stdout).toContain("interpreter fast (the lean interpreter (fast-step))");
    for (const [args, interpreter] of [
      [[], "xstate"],
      [["--interpreter", "fast"], "fast"],
      [["--interpreter", "xstate"], "xstate"],
    ] as const) {
      const j = JSON.parse((await runMain(["replay", "--verify", "--json", ...args, "--server", server.url])).stdout) as {
        ok: boolean;
        interpreter: string;
      };
      expect(j).toMatchObject({ ok: true, interpreter });
    }
    const bad = await runMain(["replay", "--verify", "--interpreter", "quick", "--server", server.url]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--interpreter must be "xstate" or "fast", got "quick"');
  });

  it("a policy changed under the same version is a divergence: node, sequence, both versions, exit 1", async () => {
    const file = join(dir, "changed.json");
    writeFileSync(file, JSON.stringify({ ...DEMO_POLICY, unhealthyDurationMs: 3_000, safeTimeMs: undefined }));
    const r = await runMain(["replay", "--verify", "--policy", file, "--server", server.url]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`DIVERGENCE  ${crashed}  event #\\d+`));
    expect(r.stdout).toContain("recorded (policy demo-1)");
    expect(r.stdout).toContain("replayed (policy demo-1)");
    expect(r.stdout).toContain("DIVERGED:");
    const j = JSON.parse((await runMain(["replay", "--json", "--policy", file, "--server", server.url])).stdout) as {
      ok: boolean;
      divergences: Array<{
        node: string;
        seq: number;
        fields: string[];
        recorded: { policyVersion: string; timers: unknown };
        replayed: { policyVersion: string };
      }>;
    };
    expect(j.ok).toBe(false);
    const first = j.divergences.find((d) => d.node === crashed)!;
    expect(first.fields).toContain("timers");
    expect(first.seq).toBe(audit.find((a) => a.node === crashed && a.to.startsWith("suspect"))!.seq);
  });

  it("a policy with another version is reported as a policy mismatch", async () => {
    const file = join(dir, "renamed.json");
    writeFileSync(file, JSON.stringify({ ...DEMO_POLICY, version: "demo-2", safeTimeMs: undefined }));
    const r = await runMain(["replay", "--verify", "--policy", file, "--server", server.url]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`policy mismatch: the audit was written under "demo-1", the replay used "demo-2"`);
    expect(r.stdout).toContain("policyVersion differ");
  });

  it("--at prints every node's state at that moment", async () => {
    const fencing = audit.find((a) => a.node === crashed && a.changed && a.to === "fencing")!;
    const r = await runMain(["replay", "--at", new Date(fencing.at).toISOString(), "--json", "--server", server.url]);
    expect(r.code).toBe(0);
    const { nodes } = JSON.parse(r.stdout) as { nodes: Array<{ node: string; state: string; epoch: number }> };
    expect(nodes).toHaveLength(5);
    expect(nodes.find((n) => n.node === crashed)).toMatchObject({ state: "fencing", epoch: 1 });
    expect(nodes.filter((n) => n.node !== crashed).every((n) => n.state === "healthy")).toBe(true);
    // Before the earliest event (the first sequence need not carry the earliest time).
    const earliest = Math.min(...audit.map((a) => a.at));
    const text = await runMain(["replay", "--at", String(earliest - 1), "--server", server.url]);
    expect(text.stdout).toMatch(/node-1\s+new/);
    const bad = await runMain(["replay", "--at", "yesterday-ish", "--server", server.url]);
    expect(bad.code).toBe(2);
  });

  it("--node shows one node's history with the triggering events, commands and their results", async () => {
    const r = await runMain(["replay", "--node", crashed, "--server", server.url]);
    expect(r.code, r.stderr).toBe(0);
    for (const step of [
      "healthy → suspect.waiting",
      "→ fencing",
      "fencing → remediating",
      "→ rejoining",
      "→ healthy",
      "heartbeat.missed",
      "timer.fired",
      "slot.acquire ✓",
      "taint.add ✓",
      "time in each state",
    ]) {
      expect(r.stdout).toContain(step);
    }
    const j = JSON.parse((await runMain(["replay", "--node", crashed, "--json", "--server", server.url])).stdout) as {
      timeline: {
        entries: Array<{ commands: Array<{ kind: string; result: { ok: boolean } | null }> }>;
        timeInState: Record<string, number>;
      };
    };
    const commands = j.timeline.entries.flatMap((e) => e.commands);
    expect(commands.find((c) => c.kind === "reprovision")?.result?.ok).toBe(true);
    expect(j.timeline.timeInState.fencing).toBeGreaterThan(0);
  });

  it("an audit written under an unknown policy version asks for --policy", async () => {
    expect(() => choosePolicy(["prod-7"])).toThrow(/policy version "prod-7", which is not built in.*--policy FILE/);
    expect(choosePolicy(["demo-1"]).resolve("demo-1").policy).toBe(DEMO_POLICY);
  });
});
