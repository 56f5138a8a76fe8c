import { createEvent } from "@fenceline/contracts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostGroupOf, reportedChecksums, sleep, startRejoinLab, type RejoinLab } from "./harness.js";

/**
 * The three rejoin scenarios of contiv issue #123, end to end: simulated machines running the
 * real agent over a real nats-server, the real control plane (engine, detector, guard,
 * actuators) and a command provisioner running shell scripts.
 *
 * | scenario                                | boot id | expected                                               |
 * |-----------------------------------------|---------|--------------------------------------------------------|
 * | 1. network loss, services kept running  | same    | config check; re-provision only if checksums differ    |
 * | 2. reboot                               | new     | re-provision (cleanup, then provision by host group)   |
 * | 3. only the agent crashed               | same    | back before fencing: healthy, config check only;       |
 * |                                         |         | watchdog fired: as 2                                   |
 */

let lab: RejoinLab;
beforeAll(async () => {
  lab = await startRejoinLab({ nodes: 7 });
}, 40_000);
afterAll(async () => {
  await lab?.stop();
}, 20_000);

const reprovisions = (node: string, since: number) =>
  lab.auditOf(node, since).flatMap((r) => r.commands.filter((c) => c.kind === "reprovision"));
/** Top-level states the node went through since `since`, consecutive repeats collapsed. */
const states = (node: string, since: number) =>
  lab
    .auditOf(node, since)
    .filter((r) => r.changed)
    .map((r) => r.to.split(".")[0])
    .filter((state, i, all) => i === 0 || all[i - 1] !== state);

/** Publishes the node's desired checksums and waits until the engine applied them. */
async function desire(node: string, checksums: Record<string, string>) {
  const at = Date.now();
  await lab.publish(createEvent("config.desired", { id: `desired:${node}:${at}`, node, at, source: "test", data: { checksums } }));
  await lab.waitFor(
    `config.desired applied to ${node}`,
    () => lab.auditOf(node).some((r) => r.event.type === "config.desired" && r.at === at),
    5_000,
  );
}

async function expectReprovisioned(node: string, since: number) {
  const markers = await lab.markers(node, since);
  const steps = markers.map((m) => m.step);
  expect(steps).toEqual(["cleanup", "provision-start", "provision"]);
  expect(new Set(markers.map((m) => m.hostGroup))).toEqual(new Set([hostGroupOf(node)]));
}

describe("rejoin, end to end through the engine", () => {
  it("1. network loss shorter than fencing, same boot id, checksums as desired → healthy, nothing re-provisioned", async () => {
    const node = "node-3";
    await desire(node, reportedChecksums(node));
    const bootId = lab.fleet.status(node).bootId;
    const t0 = Date.now();
    await lab.fleet.networkLoss(node, 1_000);
    await lab.waitFor(`${node} suspect`, () => lab.stateOf(node)?.startsWith("suspect") === true, 5_000);
    await lab.waitFor(`${node} healthy again`, () => lab.stateOf(node) === "healthy", 10_000);
    await sleep(300);
    expect(states(node, t0)).toEqual(["suspect", "healthy"]);
    expect(lab.auditOf(node, t0).some((r) => r.reason === "recovered before fencing: nothing done")).toBe(true);
    expect(reprovisions(node, t0)).toEqual([]);
    expect(await lab.markers(node, t0)).toEqual([]);
    expect(lab.fleet.status(node)).toMatchObject({ bootId, selfFenced: false });
  });

  it("1. network loss shorter than fencing, same boot id, checksums differ from the desired ones → re-provisioned (cleanup, then provision by host group)", async () => {
    const node = "node-4";
    await desire(node, { ...reportedChecksums(node), app: "app-v2" });
    expect(lab.stateOf(node)).toBe("healthy");
    const bootId = lab.fleet.status(node).bootId;
    const t0 = Date.now();
    await lab.fleet.networkLoss(node, 1_000);
    await lab.waitFor(
      `${node} re-provisioned and healthy again`,
      () => lab.stateOf(node) === "healthy" && reprovisions(node, t0).length > 0,
      15_000,
    );
    expect(states(node, t0)).toEqual(["suspect", "rejoining", "healthy"]);
    const commands = reprovisions(node, t0);
    expect(commands).toHaveLength(1);
    expect(commands[0]!.params).toMatchObject({ hostGroup: "workers", reason: "configuration drift in app", attempt: 1 });
    await expectReprovisioned(node, t0);
    expect(lab.fleet.status(node)).toMatchObject({ bootId, selfFenced: false });
    // The provisioner's output is kept in the command result.
    const result = (await lab.events(node)).find((e) => e.type === "command.result" && e.data.kind === "reprovision");
    expect(result?.type === "command.result" && result.data.output).toMatch(
      /# cleanup\ncleanup of node-4 done[\s\S]*# provision \(workers\)\nprovisioned node-4 as workers/,
    );
  });

  it("2. reboot: new boot id → re-provisioned", async () => {
    const node = "node-5";
    const before = lab.fleet.status(node);
    const t0 = Date.now();
    await lab.fleet.reboot(node);
    await lab.waitFor(
      `${node} back with a new boot id`,
      () => lab.fleet.status(node).power === "up" && lab.fleet.status(node).bootId !== before.bootId,
      5_000,
    );
    await lab.waitFor(
      `${node} healthy after re-provisioning`,
      () => lab.stateOf(node) === "healthy" && reprovisions(node, t0).length > 0,
      15_000,
    );
    expect(reprovisions(node, t0)[0]!.params.reason).toMatch(/^rebooted \(boot id node-5-boot-1 → node-5-boot-2\)$/);
    await expectReprovisioned(node, t0);
  });

  it("3. only the agent crashed and is back before fencing (same boot id, new incarnation) → healthy, config check only", async () => {
    const node = "node-6";
    await desire(node, reportedChecksums(node));
    const before = lab.fleet.status(node);
    const t0 = Date.now();
    await lab.fleet.agentCrash(node, 700);
    await lab.waitFor(`${node} agent restarted`, () => (lab.fleet.status(node).agent?.incarnation ?? 0) > before.agent!.incarnation, 5_000);
    await lab.waitFor(`${node} heard again`, () => lab.auditOf(node, t0).some((r) => r.event.type === "heartbeat.resumed"), 5_000);
    await lab.waitFor(`${node} healthy`, () => lab.stateOf(node) === "healthy", 10_000);
    await sleep(500);
    expect(states(node, t0)).toEqual(["suspect", "healthy"]);
    expect(reprovisions(node, t0)).toEqual([]);
    expect(await lab.markers(node, t0)).toEqual([]);
    expect(lab.fleet.status(node)).toMatchObject({ bootId: before.bootId, boots: before.boots, resets: 0 });
  });

  it("3. only the agent crashed and never came back → its watchdog resets the machine → as 2 (re-provisioned)", async () => {
    const node = "node-7";
    const before = lab.fleet.status(node);
    const t0 = Date.now();
    await lab.fleet.agentCrash(node);
    await lab.waitFor(`${node} reset by its watchdog`, () => lab.fleet.status(node).resets === 1, 5_000);
    await lab.waitFor(
      `${node} back with a new boot id`,
      () => lab.fleet.status(node).power === "up" && lab.fleet.status(node).bootId !== before.bootId,
      5_000,
    );
    await lab.waitFor(
      `${node} healthy after re-provisioning`,
      () => lab.stateOf(node) === "healthy" && reprovisions(node, t0).length > 0,
      20_000,
    );
    expect(reprovisions(node, t0)[0]!.params.reason).toMatch(/^rebooted/);
    await expectReprovisioned(node, t0);
    expect(lab.fleet.status(node).boots).toBe(before.boots + 1);
  });
});
