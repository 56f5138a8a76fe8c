import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VirtualClock } from "@fenceline/testing";
import { createActuator } from "../src/actuator.js";
import { createCommandProvisioner } from "../src/command-provisioner.js";
import { createProvisionerHandlers } from "../src/provisioner-handlers.js";
import { command, resultOf } from "./helpers.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "fl-provisioner-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function reprovisioner(commands: Parameters<typeof createCommandProvisioner>[0]) {
  const actuator = createActuator({
    name: "provisioner",
    handlers: createProvisionerHandlers(createCommandProvisioner(commands)),
    clock: new VirtualClock(0),
  });
  let progressed = 0;
  const run = async (node: string, hostGroup: string) =>
    resultOf(
      await actuator.execute(command("reprovision", { hostGroup, reason: "drift", attempt: 1 }, { node }), {
        progress: () => progressed++,
      }),
    );
  return { run, progressed: () => progressed };
}

/** Running (a zombie left for an init that does not reap counts as gone). */
const isAlive = async (pid: number) => {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
};

describe("command provisioner", () => {
  it("runs cleanup, then provision, with {node} and {hostGroup} substituted and FENCELINE_* set, keeping the output", async () => {
    const log = join(dir, "order.log");
    const script = (step: string) =>
      `echo "${step} {node} {hostGroup} $FENCELINE_NODE $FENCELINE_HOST_GROUP $FENCELINE_STEP" >> ${log}; echo ${step}-stdout; echo ${step}-stderr >&2`;
    const { run, progressed } = reprovisioner({ cleanup: script("cleanup"), provision: script("provision") });
    const result = await run("node-1.example", "workers");

    expect(result.data.ok).toBe(true);
    expect((await readFile(log, "utf8")).trim().split("\n")).toEqual([
      "cleanup node-1.example workers node-1.example workers cleanup",
      "provision node-1.example workers node-1.example workers provision",
    ]);
    const output = result.data.output!;
    for (const line of ["# cleanup", "cleanup-stdout", "cleanup-stderr", "# provision (workers)", "provision-stdout", "provision-stderr"]) {
      expect(output).toContain(line);
    }
    expect(output.indexOf("cleanup-stdout")).toBeLessThan(output.indexOf("provision-stdout"));
    expect(progressed()).toBeGreaterThanOrEqual(1);
  });

  it("reports a failing cleanup with its exit code and does not provision", async () => {
    const marker = join(dir, "provisioned-after-failed-cleanup");
    const { run } = reprovisioner({ cleanup: "echo cleaning; exit 3", provision: `touch ${marker}` });
    const result = await run("n1", "workers");
    expect(result.data).toMatchObject({ ok: false, reason: "cleanup failed" });
    expect(result.data.output).toContain("cleaning");
    expect(result.data.output).toContain("exit 3");
    await expect(readFile(marker)).rejects.toThrow();
  });

  it("reports a failing provision with its exit code and both outputs", async () => {
    const { run } = reprovisioner({ cleanup: "echo cleaned", provision: "echo half-done; exit 7" });
    const result = await run("n1", "db");
    expect(result.data).toMatchObject({ ok: false, reason: "provision failed" });
    expect(result.data.output).toContain("cleaned");
    expect(result.data.output).toContain("half-done");
    expect(result.data.output).toMatch(/exit 7\]/);
  });

  it("kills a command (and what it started) at the timeout", async () => {
    const pidFile = join(dir, "grandchild.pid");
    const provisioner = createCommandProvisioner({
      // The shell starts a child that keeps stdout open; the timeout must not wait for it.
      cleanup: `echo started; sleep 20 & echo $! > ${pidFile}; wait`,
      provision: "true",
      timeoutMs: 300,
    });
    const started = Date.now();
    const result = await provisioner.run("cleanup", "n1", "workers");
    const elapsed = Date.now() - started;
    expect(result.ok).toBe(false);
    expect(result.output).toContain("started");
    expect(result.output).toContain("[killed after 300 ms]");
    expect(elapsed).toBeLessThan(5_000);
    const pid = Number((await readFile(pidFile, "utf8")).trim());
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await isAlive(pid)).toBe(false);
  });

  it("refuses a host group that could inject a shell command", async () => {
    const marker = join(dir, "injected");
    const provisioner = createCommandProvisioner({ cleanup: "echo {hostGroup}", provision: "echo {hostGroup}" });
    const result = await provisioner.run("cleanup", "n1", `x; touch ${marker}`);
    expect(result.ok).toBe(false);
    expect(result.output).toContain("unsafe");
    await expect(readFile(marker)).rejects.toThrow();
    // Ordinary host group names pass.
    expect(await provisioner.run("cleanup", "n1", "gpu-workers_2/eu-west.a")).toMatchObject({ ok: true });
  });

  it("reports a command that cannot run", async () => {
    const provisioner = createCommandProvisioner({ cleanup: "/nonexistent/ansible-playbook", provision: "true" });
    const result = await provisioner.run("cleanup", "n1", "workers");
    expect(result.ok).toBe(false);
    expect(result.output).toMatch(/exit 127/);
  });
});
