import { describe, expect, it } from "vitest";
import { FENCING_TAINT, OUT_OF_SERVICE_TAINT, Policy } from "@fenceline/contracts";
import { contractFor, createHarness } from "./harness.js";
import { exportedKeys } from "./coverage.js";
import {
  DELETION_ONLY_POLICY,
  FENCE_AGENT_POLICY,
  POWER_LEVELS_POLICY,
  POWER_ONLY_POLICY,
  TWO_PDU_POLICY,
  SETTLING_POLICY,
  TEST_POLICY,
  confirmBySafeTime,
  joined,
  toDone,
  toDoneByFenceAgent,
  toFencing,
  toReprovisioning,
  toResolving,
  toRunningOutOfService,
  toSuspect,
} from "./scenarios.js";

/**
 * One test per behaviour. Each names the transitions it exercises ("source event [guard]", as
 * exportMachine lists them); the test fails unless xstate really took each of them, and the
 * "coverage" block fails when a transition of the machine has no test.
 */
const claims = new Map<string, string[]>();
let taken = new Set<string>();
const machineFor = (policy: Policy = TEST_POLICY) => createHarness(policy, { onTransition: (key) => taken.add(key) });

function behaviour(name: string, covers: string[], body: () => void) {
  for (const key of covers) claims.set(key, [...(claims.get(key) ?? []), name]);
  it(name, () => {
    taken = new Set();
    body();
    for (const key of covers) expect([...taken], `"${name}" should take ${key}`).toContain(key);
  });
}

const reprovisionOf = (h: ReturnType<typeof machineFor>) => h.commands.find((c) => c.kind === "reprovision")?.params;

describe("root-level handlers", () => {
  behaviour("config.desired is recorded in any state", ["node config.desired"], () => {
    const h = machineFor();
    joined(h).send("config.desired", { checksums: { web: "v2" }, hostGroup: "web" }, 10);
    expect(h.path).toBe("healthy");
    expect(h.context.desiredChecksums).toEqual({ web: "v2" });
    expect(h.context.hostGroup).toBe("web");
    expect(h.emitted).toEqual([]);
  });

  behaviour("config.reported records the checksums of the known boot and ignores another boot's", ["node config.reported"], () => {
    const h = machineFor();
    joined(h).send("config.reported", { bootId: "b1", checksums: { web: "v1" } }, 10);
    expect(h.context.checksums).toEqual({ web: "v1" });
    h.send("config.reported", { bootId: "b0", checksums: { web: "old" } }, 20);
    expect(h.context.checksums).toEqual({ web: "v1" });
    expect(h.context.bootId).toBe("b1");
  });

  behaviour("signals are recorded while fencing, without leaving it", ["node signal.unhealthy", "node signal.healthy"], () => {
    const h = machineFor();
    toFencing(h).send("signal.unhealthy", { signal: "serf", since: 2_200 }, 2_300);
    expect(h.path).toBe("fencing");
    expect(h.context.signals).toEqual({ heartbeat: 1_000, serf: 2_200 });
    h.send("signal.healthy", { signal: "serf" }, 2_400);
    expect(h.context.signals).toEqual({ heartbeat: 1_000 });
    expect(h.path).toBe("fencing");
  });

  behaviour(
    "liveness events are recorded while paused",
    ["node heartbeat.missed", "node heartbeat.resumed", "paused boot.changed", "node node.joined"],
    () => {
      const h = machineFor();
      joined(h).send("operator.pause", { reason: "maintenance" }, 10);
      h.send("heartbeat.missed", { lastSeenAt: 1_000, bootId: "b1" }, 2_000);
      expect(h.context.signals).toEqual({ heartbeat: 1_000 });
      h.send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 2_100);
      expect(h.context.signals).toEqual({});
      h.send("boot.changed", { previousBootId: "b1", bootId: "b2" }, 2_200);
      expect(h.context.bootId).toBe("b2");
      h.send("node.joined", { bootId: "b3", incarnation: 2 }, 2_300);
      expect(h.context.bootId).toBe("b3");
      expect(h.path).toBe("paused");
      expect(h.kinds).toEqual([]);
    },
  );

  behaviour("a boot change waiting for an operator is only recorded", ["node boot.changed"], () => {
    const h = machineFor();
    toFencing(h).fire("fence-timeout");
    expect(h.path).toBe("operator");
    h.send("boot.changed", { previousBootId: "b1", bootId: "b9" }, 700_000);
    expect(h.path).toBe("operator");
    expect(h.context.bootId).toBe("b9");
  });

  behaviour("a slot granted to a healthy node is released", ["node command.result [unwantedSlot]"], () => {
    const h = machineFor();
    joined(h).result("slot.acquire", true, 10);
    expect(h.kinds).toEqual(["slot.release"]);
    expect(h.reasons).toEqual(["a remediation slot arrived after the node recovered: released"]);
    expect(h.context.slot).toBe(false);
  });

  behaviour("any other result is explained and changes nothing", ["node command.result"], () => {
    const h = machineFor();
    joined(h).result("pods.delete", false, 10, { reason: "boom" });
    expect(h.path).toBe("healthy");
    expect(h.reasons).toEqual(["pods.delete failed: boom"]);
    expect(h.kinds).toEqual([]);
  });

  behaviour(
    "operator.pause works in every state: a node being fenced is paused, its slot freed, its fencing taint kept",
    ["node operator.pause"],
    () => {
      const h = machineFor();
      toFencing(h).send("operator.pause", { reason: "maintenance" }, 2_200);
      expect(h.path).toBe("paused");
      expect(h.context.pausedReason).toBe("maintenance");
      expect(h.kinds).toEqual(["slot.release"]);
      expect(h.context).toMatchObject({ slot: false, fencingTaint: true, timers: {} });
      // Paused mid-remediation, the out-of-service taint comes off.
      const r = machineFor();
      toRunningOutOfService(r).send("operator.pause", { reason: "hands on" }, 5_150);
      expect(r.path).toBe("paused");
      expect(r.commands).toEqual([
        { kind: "taint.remove", params: { taint: OUT_OF_SERVICE_TAINT } },
        { kind: "slot.release", params: {} },
      ]);
    },
  );

  behaviour("operator.resume is ignored when the node is not paused", ["node operator.resume"], () => {
    const h = machineFor();
    joined(h).send("operator.resume", {}, 10);
    expect(h.path).toBe("healthy");
    expect(h.reasons).toEqual(["resume ignored: the node is not paused"]);
  });

  behaviour("operator.reset while suspect (or down) marks it for re-provisioning when it rejoins", ["node operator.reset"], () => {
    const h = machineFor();
    toSuspect(h).send("operator.reset", { reason: "just in case" }, 1_500);
    expect(h.path).toBe("suspect.waiting");
    expect(h.context.rejoin.reprovision).toBe("operator reset: just in case");
    expect(h.reasons).toEqual(["reset by an operator (just in case): re-provisioned when it rejoins"]);
  });

  behaviour(
    "a changed contract of the known boot is recorded with its guarantee; another boot's is not",
    ["node contract.reported"],
    () => {
      const h = machineFor();
      joined(h);
      expect(h.context.guarantee).toMatchObject({ guarantee: "watchdog", timeBased: true });
      const software = { ...h.context.contract!, watchdog: { kind: "software" as const, timeoutMs: 1_500 } };
      h.send("contract.reported", { bootId: "b0", contract: software }, 10);
      expect(h.context.guarantee.guarantee).toBe("watchdog");
      h.send("contract.reported", { bootId: "b1", contract: software, peerUrl: "http://10.0.0.1:9797" }, 20);
      expect(h.context.contract).toEqual(software);
      expect(h.context.peerUrl).toBe("http://10.0.0.1:9797");
      expect(h.context.guarantee).toMatchObject({ guarantee: "none", timeBased: false, weak: true });
      expect(h.context.guarantee.reason).toMatch(/software reboot timer, which dies with the agent/);
    },
  );

  behaviour("node.forgotten in any state: it leaves the fleet, its slot freed, its deadlines dropped", ["node node.forgotten"], () => {
    const h = machineFor();
    toRunningOutOfService(h).send("node.forgotten", { reason: "decommissioned" }, 5_150);
    expect(h.path).toBe("forgotten");
    expect(h.commands).toEqual([
      { kind: "taint.remove", params: { taint: OUT_OF_SERVICE_TAINT } },
      { kind: "slot.release", params: {} },
    ]);
    expect(h.context).toMatchObject({ slot: false, timers: {}, forgottenReason: "decommissioned" });
  });
});

describe("healthy", () => {
  behaviour("a missed heartbeat makes the node suspect, counted from its last heartbeat", ["healthy heartbeat.missed"], () => {
    const h = machineFor();
    joined(h).send("heartbeat.missed", { lastSeenAt: 1_500, bootId: "b1" }, 2_000);
    expect(h.path).toBe("suspect.waiting");
    expect(h.context.signals).toEqual({ heartbeat: 1_500 });
    expect(h.context.timers).toEqual({ suspect: 2_500 });
    expect(h.context.since).toBe(2_000);
    expect(h.kinds).toEqual([]);
  });

  behaviour("an unhealthy signal makes the node suspect, counted from when it started", ["healthy signal.unhealthy"], () => {
    const h = machineFor();
    joined(h).send("signal.unhealthy", { signal: "condition:Ready", since: 500 }, 800);
    expect(h.path).toBe("suspect.waiting");
    expect(h.context.timers).toEqual({ suspect: 1_500 });
  });

  behaviour("a boot id change rejoins with re-provisioning by host group", ["healthy boot.changed"], () => {
    const h = machineFor();
    joined(h).send("boot.changed", { previousBootId: "b1", bootId: "b2" }, 100);
    expect(h.path).toBe("rejoining.reprovisioning");
    expect(reprovisionOf(h)).toEqual({ hostGroup: "db", reason: "rebooted (boot id b1 → b2)", attempt: 1, ticket: 1 });
  });

  behaviour("heartbeats resuming with a new boot id rejoin with re-provisioning", ["healthy heartbeat.resumed [rebooted]"], () => {
    const h = machineFor();
    joined(h).send("heartbeat.resumed", { bootId: "b2", incarnation: 2 }, 100);
    expect(h.path).toBe("rejoining.reprovisioning");
    expect(h.context.bootId).toBe("b2");
  });

  behaviour("heartbeats resuming with the same boot id only record the checksums", ["healthy heartbeat.resumed"], () => {
    const h = machineFor();
    joined(h).send("heartbeat.resumed", { bootId: "b1", incarnation: 1, checksums: { web: "v1" } }, 100);
    expect(h.path).toBe("healthy");
    expect(h.context.checksums).toEqual({ web: "v1" });
    expect(h.emitted).toEqual([]);
  });

  behaviour("node.joined with a new boot id rejoins with re-provisioning", ["healthy node.joined [rebooted]"], () => {
    const h = machineFor();
    joined(h).send("node.joined", { bootId: "b2", incarnation: 2 }, 100);
    expect(h.path).toBe("rejoining.reprovisioning");
  });

  behaviour("node.joined with the same boot id records its host group and role", ["healthy node.joined"], () => {
    const h = machineFor();
    joined(h).send("node.joined", { bootId: "b1", incarnation: 1, hostGroup: "web", controlPlane: true }, 100);
    expect(h.path).toBe("healthy");
    expect(h.context).toMatchObject({ hostGroup: "web", controlPlane: true });
  });

  behaviour("operator.reset re-provisions a healthy node", ["healthy operator.reset"], () => {
    const h = machineFor();
    joined(h).send("operator.reset", { reason: "new kernel" }, 10);
    expect(h.path).toBe("rejoining.reprovisioning");
    expect(reprovisionOf(h)).toMatchObject({ reason: "operator reset: new kernel" });
  });

  behaviour("operator.pause pauses a healthy node", ["healthy operator.pause"], () => {
    const h = machineFor();
    joined(h).send("operator.pause", { reason: "kernel upgrade" }, 100);
    expect(h.path).toBe("paused");
    expect(h.context.pausedReason).toBe("kernel upgrade");
    expect(h.reasons).toEqual(["paused by an operator: no remediation until resumed"]);
  });
});

describe("suspect", () => {
  behaviour("more missed heartbeats keep the node suspect and its deadline", ["suspect heartbeat.missed"], () => {
    const h = machineFor();
    toSuspect(h).send("heartbeat.missed", { lastSeenAt: 1_000, bootId: "b1" }, 2_000);
    expect(h.path).toBe("suspect.waiting");
    expect(h.context.timers).toEqual({ suspect: 2_000 });
  });

  behaviour("another unhealthy signal keeps the node suspect", ["suspect signal.unhealthy"], () => {
    const h = machineFor();
    toSuspect(h).send("signal.unhealthy", { signal: "serf", since: 1_500 }, 2_000);
    expect(h.path).toBe("suspect.waiting");
    expect(h.context.signals).toEqual({ heartbeat: 1_000, serf: 1_500 });
  });

  behaviour("a reboot while suspect rejoins with re-provisioning", ["suspect boot.changed"], () => {
    const h = machineFor();
    toSuspect(h).send("boot.changed", { previousBootId: "b1", bootId: "b2" }, 2_000);
    expect(h.path).toBe("rejoining.reprovisioning");
    expect(h.context.timers).not.toHaveProperty("suspect");
  });

  behaviour("heartbeats resuming with a new boot id rejoin with re-provisioning", ["suspect heartbeat.resumed [rebooted]"], () => {
    const h = machineFor();
    toSuspect(h).send("heartbeat.resumed", { bootId: "b2", incarnation: 2 }, 2_000);
    expect(h.path).toBe("rejoining.reprovisioning");
    expect(reprovisionOf(h)?.reason).toBe("rebooted (boot id b1 → b2)");
  });

  behaviour(
    "recovery before the suspect timer → healthy with nothing done",
    ["suspect heartbeat.resumed [recovers]", "recovered (always)"],
    () => {
      const h = machineFor();
      toSuspect(h).send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 2_000);
      expect(h.path).toBe("healthy");
      expect(h.kinds).toEqual([]);
      expect(h.reasons).toEqual(["recovered before fencing: nothing done"]);
      expect(h.context.timers).toEqual({});
      expect(h.context.epoch).toBe(0);
    },
  );

  behaviour("recovery with configuration drift rejoins with re-provisioning", ["recovered (always) [needsRejoin]"], () => {
    const h = machineFor();
    toSuspect(h, { checksums: { web: "v1" } }).send("config.desired", { checksums: { web: "v2" } }, 2_000);
    h.send("heartbeat.resumed", { bootId: "b1", incarnation: 1, checksums: { web: "v1" } }, 2_000);
    expect(h.path).toBe("rejoining.reprovisioning");
    expect(reprovisionOf(h)).toEqual({ hostGroup: "db", reason: "configuration drift in web", attempt: 1, ticket: 1 });
    expect(h.context.fencingTaint).toBe(false);
  });

  behaviour("heartbeats resuming while another signal is unhealthy keep the node suspect", ["suspect heartbeat.resumed"], () => {
    const h = machineFor();
    toSuspect(h).send("signal.unhealthy", { signal: "serf", since: 1_500 }, 2_000);
    h.send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 2_000);
    expect(h.path).toBe("suspect.waiting");
    expect(h.context.signals).toEqual({ serf: 1_500 });
  });

  behaviour(
    "node.joined while suspect: rebooted → rejoining, same boot → recovered, other signal → stays",
    ["suspect node.joined [rebooted]", "suspect node.joined [recovers]", "suspect node.joined"],
    () => {
      const rebooted = machineFor();
      toSuspect(rebooted).send("node.joined", { bootId: "b2", incarnation: 2 }, 2_000);
      expect(rebooted.path).toBe("rejoining.reprovisioning");

      const recovered = machineFor();
      toSuspect(recovered).send("node.joined", { bootId: "b1", incarnation: 1 }, 2_000);
      expect(recovered.path).toBe("healthy");

      const stillSick = machineFor();
      toSuspect(stillSick).send("signal.unhealthy", { signal: "serf", since: 1_500 }, 2_000);
      stillSick.send("node.joined", { bootId: "b1", incarnation: 1 }, 2_000);
      expect(stillSick.path).toBe("suspect.waiting");
    },
  );

  behaviour("the last unhealthy signal clearing recovers the node", ["suspect signal.healthy [recovers]"], () => {
    const h = machineFor();
    joined(h).send("signal.unhealthy", { signal: "condition:Ready", since: 100 }, 100);
    h.send("signal.healthy", { signal: "condition:Ready" }, 500);
    expect(h.path).toBe("healthy");
    expect(h.context.signals).toEqual({});
  });

  behaviour("one of two signals clearing keeps the node suspect", ["suspect signal.healthy"], () => {
    const h = machineFor();
    toSuspect(h).send("signal.unhealthy", { signal: "serf", since: 1_500 }, 2_000);
    h.send("signal.healthy", { signal: "serf" }, 2_000);
    expect(h.path).toBe("suspect.waiting");
    expect(h.context.signals).toEqual({ heartbeat: 1_000 });
  });

  behaviour("operator.pause pauses a suspect node and drops its deadline", ["suspect operator.pause"], () => {
    const h = machineFor();
    toSuspect(h).send("operator.pause", { reason: "investigating" }, 2_000);
    expect(h.path).toBe("paused");
    expect(h.context.timers).toEqual({});
  });

  describe("waiting", () => {
    behaviour("the suspect timer asks the fleet guard for a slot", ["suspect.waiting timer.fired [timerIs(suspect)]"], () => {
      const h = machineFor();
      toSuspect(h).fire("suspect");
      expect(h.path).toBe("suspect.requestingSlot");
      expect(h.commands).toEqual([{ kind: "slot.acquire", params: { controlPlane: false, membershipVersion: 1 } }]);
      expect(h.context.timers).toEqual({});
    });

    behaviour("a stale timer.fired (wrong due) is ignored", [], () => {
      const h = machineFor();
      toSuspect(h).send("timer.fired", { timer: "suspect", due: 1_999 }, 2_000);
      expect(h.path).toBe("suspect.waiting");
      expect(h.context.timers).toEqual({ suspect: 2_000 });
      expect(h.emitted).toEqual([]);
    });
  });

  describe("requestingSlot", () => {
    behaviour(
      "a granted slot starts fencing: epoch + 1, NoSchedule taint, watchdog stop",
      ["suspect.requestingSlot command.result [slotGranted]"],
      () => {
        const h = machineFor();
        toFencing(h);
        expect(h.path).toBe("fencing");
        expect(h.context).toMatchObject({ epoch: 1, slot: true, bootIdAtFencing: "b1", since: 2_100 });
        expect(h.commands).toEqual([
          { kind: "taint.add", params: { taint: FENCING_TAINT } },
          { kind: "watchdog.stop", params: { reason: "fencing epoch 1", bootId: "b1" } },
        ]);
        expect(FENCING_TAINT.effect).toBe("NoSchedule");
        expect(h.context.timers).toEqual({ "safe-time": 5_000, "fence-timeout": 602_100 });
      },
    );

    behaviour(
      "with a fence agent, fencing powers the node off first: level 1/2 [power], then [watchdog]",
      ["suspect.requestingSlot command.result [slotGranted]"],
      () => {
        const h = machineFor(FENCE_AGENT_POLICY);
        toFencing(h);
        expect(h.commands).toEqual([
          { kind: "taint.add", params: { taint: FENCING_TAINT } },
          { kind: "fence.poweroff", params: { hostGroup: "db" } },
        ]);
        expect(h.context.fence).toMatchObject({ level: 0, toPowerOn: ["power"] });
        expect(h.context.timers).toEqual({ "safe-time": 5_000, "fence-timeout": 602_100, "fence-level": 62_100 });
        expect(h.reasons[0]).toMatch(/; level 1\/2 \[power\]$/);
      },
    );

    behaviour(
      "a refused slot keeps the node suspect with the guard's reason and a retry timer",
      ["suspect.requestingSlot command.result [slotRefused]"],
      () => {
        const h = machineFor();
        toSuspect(h).fire("suspect");
        h.result("slot.acquire", false, 2_100, { reason: "maxUnhealthy 1 reached" });
        expect(h.path).toBe("suspect.requestingSlot");
        expect(h.reasons).toEqual(["fleet guard refused a remediation slot: maxUnhealthy 1 reached; asking again in 1s"]);
        expect(h.context.timers).toEqual({ "guard-retry": 3_100 });
        expect(h.context.epoch).toBe(0);
      },
    );

    behaviour("the retry timer asks the guard again", ["suspect.requestingSlot timer.fired [timerIs(guard-retry)]"], () => {
      const h = machineFor();
      toSuspect(h).fire("suspect");
      h.result("slot.acquire", false, 2_100).fire("guard-retry");
      expect(h.path).toBe("suspect.requestingSlot");
      expect(h.kinds).toEqual(["slot.acquire"]);
      expect(h.context.timers).toEqual({});
    });

    behaviour("other results while asking for a slot are only explained", ["suspect.requestingSlot command.result"], () => {
      const h = machineFor();
      toSuspect(h).fire("suspect");
      h.result("taint.add", true, 2_100);
      expect(h.path).toBe("suspect.requestingSlot");
      expect(h.reasons).toEqual(["taint.add succeeded"]);
    });

    behaviour(
      "a node that still holds its slot goes straight to fencing, without asking the guard again",
      ["suspect.requestingSlot (always) [holdsSlot]"],
      () => {
        const h = machineFor();
        // Back with a new boot mid-remediation, then silent again mid-rejoin: suspect with the slot of its last fencing.
        toRunningOutOfService(h).send("heartbeat.resumed", { bootId: "b2", incarnation: 2 }, 5_150);
        h.send("heartbeat.missed", { lastSeenAt: 8_500, bootId: "b2" }, 9_000);
        expect(h.path).toBe("suspect.waiting");
        expect(h.context.slot).toBe(true);
        expect(h.context.fencingTaint).toBe(true);
        h.fire("suspect");
        expect(h.path).toBe("fencing");
        expect(h.context.epoch).toBe(2);
        expect(h.kinds).toEqual(["taint.add", "watchdog.stop"]);
      },
    );
  });
});

describe("fencing", () => {
  behaviour(
    "safe time is counted from the last heartbeat; when it passes, the fleet guard is asked about the majority",
    ["fencing timer.fired [timerIs(safe-time)]"],
    () => {
      const h = machineFor();
      toFencing(h);
      expect(h.context.fencingTaint).toBe(true);
      expect(h.context.lastSeenAt).toBe(1_000);
      expect(h.context.timers["safe-time"]).toBe(1_000 + 4_000);
      h.fire("safe-time");
      expect(h.path).toBe("fencing");
      expect(h.commands).toEqual([{ kind: "slot.acquire", params: { controlPlane: false, membershipVersion: 1 } }]);
      expect(h.reasons).toEqual(["safe time passed: asking the fleet guard whether a healthy majority held meanwhile"]);
      expect(h.context.fence).toMatchObject({ confirmedBy: null, watchdogStopAckedAt: null, checkingMajority: true });
      expect(h.context.timers).toEqual({ "fence-timeout": 602_100 });
    },
  );

  behaviour(
    "majority answer: a healthy majority since before the last heartbeat confirms fencing",
    ["fencing command.result [majorityAnswer]", "fencing (always) [fenceConfirmed]"],
    () => {
      const h = machineFor();
      toFencing(h).fire("safe-time");
      // The boundary: a majority since the very last heartbeat held "throughout".
      h.result("slot.acquire", true, 5_000, { facts: { majoritySince: 1_000 } });
      expect(h.reasons[0]).toBe("fencing confirmed: safe time: silent for 4s with a healthy majority since 1000");
      expect(h.path).toBe("remediating.resolving");
      expect(h.kinds).toEqual(["cluster.version"]);
      expect(h.context.fence).toMatchObject({
        confirmedBy: { by: "safe-time", lastSeenAt: 1_000, majoritySince: 1_000 },
        checkingMajority: false,
      });
      expect(h.context.majoritySince).toBe(1_000);
      expect(h.context.timers).toEqual({ "step-timeout": 15_000 });
    },
  );

  behaviour(
    "majority answer: a majority back only after the last heartbeat re-arms the safe time from its return",
    ["fencing command.result [majorityAnswer]"],
    () => {
      // 3 × 0.5 s peer rounds + 1.5 s watchdog + 1 s margin = 4 s after the majority returned.
      const h = machineFor();
      toFencing(h)
        .fire("safe-time")
        .result("slot.acquire", true, 5_000, { facts: { majoritySince: 4_000 } });
      expect(h.path).toBe("fencing");
      expect(h.reasons).toEqual(["the healthy majority only returned at 4000: assumed fenced at 8000"]);
      expect(h.context.timers).toEqual({ "safe-time": 8_000, "fence-timeout": 602_100 });
      expect(h.context).toMatchObject({ majoritySince: 4_000, fence: { confirmedBy: null, checkingMajority: false } });
      expect(h.kinds).toEqual([]);
      // When it passes the guard is asked again; the same majority now confirms.
      h.fire("safe-time");
      expect(h.kinds).toEqual(["slot.acquire"]);
      h.result("slot.acquire", true, 8_100, { facts: { majoritySince: 4_000 } });
      expect(h.path).toBe("remediating.resolving");

      // An answer arriving after that re-armed time confirms at once.
      const late = machineFor();
      toFencing(late)
        .fire("safe-time")
        .result("slot.acquire", true, 9_000, { facts: { majoritySince: 4_000 } });
      expect(late.reasons[0]).toBe("fencing confirmed: safe time: silent for 4s with a healthy majority since 4000");
      expect(late.path).toBe("remediating.resolving");
    },
  );

  behaviour(
    "majority answer: no healthy majority now (refused, or granted without majoritySince) asks again after the guard retry time",
    ["fencing command.result [majorityAnswer]"],
    () => {
      const h = machineFor();
      toFencing(h).fire("safe-time").result("slot.acquire", false, 5_100, { reason: "no healthy majority: 1 of 3 nodes healthy" });
      expect(h.path).toBe("fencing");
      expect(h.reasons).toEqual([
        "no healthy majority now (no healthy majority: 1 of 3 nodes healthy): not assuming the node fenced; asking again in 1s",
      ]);
      expect(h.context.timers).toEqual({ "safe-time": 6_100, "fence-timeout": 602_100 });
      expect(h.context.fence).toMatchObject({ confirmedBy: null, checkingMajority: false });
      h.fire("safe-time").result("slot.acquire", true, 6_200, { reason: "already holds a slot" });
      expect(h.path).toBe("fencing");
      expect(h.reasons[0]).toMatch(/^no healthy majority now \(already holds a slot\): not assuming the node fenced/);
      expect(h.context.timers["safe-time"]).toBe(7_200);
      confirmBySafeTime(h);
      expect(h.path).toBe("remediating.resolving");
    },
  );

  behaviour(
    "a majority answer arriving after the node came back alive confirms nothing and arms no safe time",
    ["fencing command.result [majorityAnswer]"],
    () => {
      for (const [ok, facts] of [
        [true, { majoritySince: 0 }],
        [false, undefined],
        [true, { majoritySince: 4_000 }],
      ] as const) {
        const h = machineFor();
        toFencing(h).fire("safe-time").send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 5_050);
        h.result("slot.acquire", ok, 9_100, { facts });
        expect(h.path).toBe("fencing");
        expect(h.context.fence).toMatchObject({ confirmedBy: null, checkingMajority: false });
        expect(h.context.timers).toEqual({ "fence-timeout": 602_100 });
        expect(h.reasons).toEqual([
          expect.stringMatching(/^the node is alive with the same boot id: the majority answer no longer matters/),
        ]);
        // Silent again: the safe time counts from the new last heartbeat.
        h.send("heartbeat.missed", { lastSeenAt: 9_500, bootId: "b1" }, 10_000);
        expect(h.context.timers["safe-time"]).toBe(13_500);
      }
    },
  );

  behaviour("a slot.acquire answer of an older epoch is not the majority answer", ["fencing command.result"], () => {
    const h = machineFor();
    toFencing(h)
      .fire("safe-time")
      .result("slot.acquire", true, 5_000, { epoch: 0, facts: { majoritySince: 0 } });
    expect(h.path).toBe("fencing");
    expect(h.context.fence).toMatchObject({ confirmedBy: null, checkingMajority: true });
    expect(h.reasons).toEqual(["slot.acquire succeeded"]);
  });

  behaviour(
    "a node silent for longer than the safe time gets a deadline no earlier than now",
    ["fencing timer.fired [timerIs(safe-time)]"],
    () => {
      const h = machineFor();
      toSuspect(h).fire("suspect");
      h.result("slot.acquire", false, 2_100).fire("guard-retry");
      h.result("slot.acquire", true, 9_000);
      expect(h.context.timers["safe-time"]).toBe(9_000);
      confirmBySafeTime(h);
      expect(h.path).toBe("remediating.resolving");
    },
  );

  behaviour(
    "heartbeats resuming with a new boot id confirm fencing by reboot: straight to rejoining, no remediation",
    ["fencing heartbeat.resumed [rebootedSinceFencing]", "fencing (always) [fenceConfirmedByReboot]"],
    () => {
      const h = machineFor();
      toFencing(h).send("heartbeat.resumed", { bootId: "b2", incarnation: 2 }, 3_000);
      expect(h.reasons[0]).toBe("fencing confirmed: reboot: boot id b1 → b2");
      expect(h.path).toBe("rejoining.reprovisioning");
      expect(h.kinds).toEqual(["reprovision"]);
      expect(reprovisionOf(h)).toEqual({ hostGroup: "db", reason: "rebooted (boot id b1 → b2)", attempt: 1, ticket: 1 });
      expect(h.context).toMatchObject({
        epoch: 1,
        slot: true,
        fencingTaint: true,
        fence: { confirmedBy: { by: "reboot", bootIdAtFencing: "b1", bootId: "b2" } },
      });
      expect(h.context.timers).toEqual({ "reprovision-timeout": 13_000 });
      h.result("reprovision", true, 4_000, { facts: { attempt: 1, ticket: 1 } }).result("taint.remove", true, 4_100, {
        facts: { taint: FENCING_TAINT.key },
      });
      expect(h.path).toBe("healthy");
      expect(h.context).toMatchObject({ slot: false, fencingTaint: false, fence: { confirmedBy: null } });
      const kinds = h.history.flatMap((s) => s.emitted.flatMap((e) => (e.type === "command" ? [e.request.kind] : [])));
      expect(kinds).toEqual(["slot.acquire", "taint.add", "watchdog.stop", "reprovision", "taint.remove", "slot.release"]);
    },
  );

  behaviour(
    "boot.changed confirms fencing by reboot, also while the guard is asked about the majority",
    ["fencing boot.changed [rebootedSinceFencing]"],
    () => {
      const h = machineFor();
      toFencing(h).send("boot.changed", { previousBootId: "b1", bootId: "b2" }, 3_000);
      expect(h.path).toBe("rejoining.reprovisioning");

      const checking = machineFor();
      toFencing(checking).fire("safe-time").send("boot.changed", { previousBootId: "b1", bootId: "b2" }, 5_050);
      expect(checking.path).toBe("rejoining.reprovisioning");
      // The late answer is only explained: it does not send the node to remediation.
      checking.result("slot.acquire", true, 5_100, { facts: { majoritySince: 0 } });
      expect(checking.path).toBe("rejoining.reprovisioning");
      expect(checking.kinds).toEqual([]);
    },
  );

  behaviour("node.joined with a new boot id confirms fencing by reboot", ["fencing node.joined [rebootedSinceFencing]"], () => {
    const h = machineFor();
    toFencing(h).send("node.joined", { bootId: "b2", incarnation: 2 }, 3_000);
    expect(h.path).toBe("rejoining.reprovisioning");
  });

  behaviour(
    "the node alive with the same boot id cancels the safe time: never confirmed by time while heartbeating",
    ["fencing heartbeat.resumed"],
    () => {
      const h = machineFor();
      toFencing(h).send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 3_000);
      expect(h.path).toBe("fencing");
      expect(h.context.timers).not.toHaveProperty("safe-time");
      expect(h.reasons[0]).toMatch(/alive with the same boot id: the safe time no longer applies/);
      h.send("timer.fired", { timer: "safe-time", due: 5_000 }, 5_000);
      expect(h.path).toBe("fencing");
      expect(h.context.fence.confirmedBy).toBeNull();
    },
  );

  behaviour("node.joined with the same boot id cancels the safe time too", ["fencing node.joined"], () => {
    const h = machineFor();
    toFencing(h).send("node.joined", { bootId: "b1", incarnation: 1 }, 3_000);
    expect(h.path).toBe("fencing");
    expect(h.context.timers).not.toHaveProperty("safe-time");
  });

  behaviour("boot.changed back to the boot id of fencing counts as alive, not as a reboot", ["fencing boot.changed"], () => {
    const h = machineFor();
    toFencing(h).send("boot.changed", { previousBootId: "b0", bootId: "b1" }, 3_000);
    expect(h.path).toBe("fencing");
    expect(h.context.timers).not.toHaveProperty("safe-time");
  });

  behaviour("silent again: the safe time restarts from the new last heartbeat", ["fencing heartbeat.missed"], () => {
    const h = machineFor();
    toFencing(h).send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 3_000);
    h.send("heartbeat.missed", { lastSeenAt: 3_500, bootId: "b1" }, 4_500);
    expect(h.context.timers["safe-time"]).toBe(7_500);
    confirmBySafeTime(h);
    expect(h.path).toBe("remediating.resolving");
  });

  behaviour(
    "the fence agent's power-off, read back off, confirms fencing at once: no safe time",
    ["fencing command.result [resultOk(fence.poweroff)]"],
    () => {
      const h = machineFor(FENCE_AGENT_POLICY);
      toFencing(h).result("fence.poweroff", true, 2_200, { facts: { method: "power", device: "pdu-a,pdu-b", power: "off" } });
      expect(h.reasons[0]).toBe("fencing confirmed: fence agent: powered off (level 1/2 [power])");
      expect(h.context.fence.confirmedBy).toEqual({ by: "power", device: "pdu-a,pdu-b" });
      expect(h.path).toBe("remediating.resolving");
    },
  );

  behaviour(
    "a power-off result of an older epoch does not confirm; a failed one of another level does not escalate",
    ["fencing command.result"],
    () => {
      const h = machineFor(FENCE_AGENT_POLICY);
      toFencing(h).result("fence.poweroff", true, 2_200, { epoch: 0 });
      expect(h.path).toBe("fencing");
      expect(h.reasons).toEqual(["fence.poweroff succeeded"]);
      const p = machineFor(POWER_LEVELS_POLICY);
      toFencing(p).result("fence.poweroff", false, 2_300, {
        reason: "unreachable: no answer",
        facts: { method: "pdu-a", error: "unreachable" },
      });
      expect(p.path).toBe("fencing");
      expect(p.context.fence).toMatchObject({ level: 0, failed: [] });
      expect(p.reasons).toEqual(["fence.poweroff failed: unreachable: no answer"]);
    },
  );

  behaviour(
    "a failed power level escalates at once to the next: its commands go out, the failure is kept",
    ["fencing command.result [fenceLevelFailed]"],
    () => {
      const h = machineFor(POWER_LEVELS_POLICY);
      toFencing(h);
      expect(h.commands).toEqual([
        { kind: "taint.add", params: { taint: FENCING_TAINT } },
        { kind: "fence.poweroff", params: { device: "ipmi", hostGroup: "db" } },
      ]);
      h.result("fence.poweroff", false, 2_300, {
        reason: "auth: the BMC refused the IPMI session at once",
        facts: { method: "ipmi", device: "ipmi", error: "auth" },
      });
      expect(h.path).toBe("fencing");
      // A refused login may heal (a password rolled out late): unfencing will still try ipmi.
      expect(h.commands).toEqual([{ kind: "watchdog.stop", params: { reason: "fencing epoch 1", bootId: "b1" } }]);
      expect(h.reasons).toEqual([
        "fencing level 1/2 [ipmi]: fence.poweroff (ipmi) failed: auth: the BMC refused the IPMI session at once; escalating to level 2/2 [watchdog]",
      ]);
      expect(h.context.fence).toMatchObject({
        level: 1,
        toPowerOn: ["ipmi"],
        failed: ["level 1/2 [ipmi]: fence.poweroff (ipmi) failed: auth: the BMC refused the IPMI session at once"],
      });
      // The last level runs until the fencing timeout: no level deadline of its own.
      expect(h.context.timers["fence-level"]).toBeUndefined();
      // The watchdog level then confirms as watchdog fencing always did.
      confirmBySafeTime(h);
      expect(h.context.fence.confirmedBy).toMatchObject({ by: "safe-time" });
      expect(h.reasons).toContain("fencing confirmed: safe time: silent for 4s with a healthy majority since 0 (level 2/2 [watchdog])");
      expect(h.path).toBe("remediating.resolving");
    },
  );

  behaviour("a power level that does not answer in its time escalates", ["fencing timer.fired [fenceLevelTimedOut]"], () => {
    const h = machineFor(POWER_LEVELS_POLICY);
    toFencing(h);
    expect(h.context.timers["fence-level"]).toBe(2_100 + 30_000);
    // The safe time passes while [ipmi] is tried: it is kept, not counted.
    confirmBySafeTime(h);
    expect(h.path).toBe("fencing");
    expect(h.context.fence.timeProof).toMatchObject({ by: "safe-time", majoritySince: 0 });
    expect(h.reasons).toEqual([
      "safe time: silent since 1000 with a healthy majority since 0: kept; it counts once a level with the watchdog starts (now level 1/2 [ipmi])",
    ]);
    h.fire("fence-level");
    expect(h.reasons[0]).toBe("fencing level 1/2 [ipmi]: no confirmation within 30s; escalating to level 2/2 [watchdog]");
    // …and counts the moment the watchdog level starts.
    expect(h.reasons[1]).toBe("fencing confirmed: safe time: silent for 4s with a healthy majority since 0 (level 2/2 [watchdog])");
    expect(h.path).toBe("remediating.resolving");
    expect(h.context.fence.toPowerOn).toEqual(["ipmi"]);
  });

  behaviour("a node alive again with its boot id voids the time kept for a later watchdog level", ["fencing heartbeat.resumed"], () => {
    const h = machineFor(POWER_LEVELS_POLICY);
    toFencing(h);
    confirmBySafeTime(h);
    expect(h.context.fence.timeProof).not.toBeNull();
    h.send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 6_000);
    expect(h.context.fence.timeProof).toBeNull();
    h.fire("fence-level");
    expect(h.path).toBe("fencing");
    expect(h.context.fence).toMatchObject({ level: 1, confirmedBy: null });
    expect(h.kinds).toEqual(["watchdog.stop"]);
  });

  behaviour(
    "the last level failing needs an operator, with every level's failure",
    ["fencing command.result [lastFenceLevelFailed]"],
    () => {
      const h = machineFor(POWER_ONLY_POLICY);
      toFencing(h);
      // Without a watchdog level, time proves nothing: no safe-time deadline.
      expect(h.context.timers).toEqual({ "fence-timeout": 602_100 });
      expect(h.reasons[0]).toContain("no level fences by watchdog: only a power-off read back or a new boot confirms");
      h.result("fence.poweroff", false, 2_400, {
        reason: "unreachable: the device could not be reached",
        facts: { method: "ipmi", error: "unreachable" },
      });
      expect(h.path).toBe("operator");
      expect(h.context.operatorReason).toBe(
        "every fencing level failed: level 1/1 [ipmi]: fence.poweroff (ipmi) failed: unreachable: the device could not be reached",
      );
    },
  );

  behaviour(
    "a level of two devices needs both: one powered off proves nothing; a later level's success does not need an earlier one's",
    ["fencing command.result [resultOk(fence.poweroff)]"],
    () => {
      const h = machineFor(TWO_PDU_POLICY);
      toFencing(h);
      expect(h.commands.filter((c) => c.kind === "fence.poweroff").map((c) => c.params)).toEqual([
        { device: "pdu-a", hostGroup: "db" },
        { device: "pdu-b", hostGroup: "db" },
      ]);
      h.result("fence.poweroff", true, 2_200, { facts: { method: "pdu-a", device: "pdu-a", power: "off" } });
      expect(h.path).toBe("fencing");
      expect(h.context.fence.poweredOff).toEqual(["pdu-a"]);
      h.result("fence.poweroff", true, 2_300, { facts: { method: "pdu-b", device: "pdu-b", power: "off" } });
      expect(h.path).toBe("remediating.resolving");
      expect(h.context.fence.confirmedBy).toEqual({ by: "power", device: "pdu-a,pdu-b" });
    },
  );

  behaviour(
    "a power-off of an earlier level that arrives late still proves it",
    ["fencing command.result [resultOk(fence.poweroff)]"],
    () => {
      const h = machineFor(POWER_LEVELS_POLICY);
      toFencing(h).fire("fence-level");
      expect(h.context.fence.level).toBe(1);
      h.result("fence.poweroff", true, 33_000, { facts: { method: "ipmi", device: "ipmi", power: "off" } });
      expect(h.context.fence.confirmedBy).toEqual({ by: "power", device: "ipmi" });
      expect(h.reasons).toContain("fencing confirmed: fence agent: powered off (level 1/2 [ipmi])");
    },
  );

  behaviour("a node's own levels, else its host group's, else the policy's", ["fencing command.result [resultOk(fence.poweroff)]"], () => {
    const topology = Policy.parse({
      ...TEST_POLICY,
      version: "test-topology",
      fencing: { levels: [["ipmi"], ["watchdog"]], hostGroups: { db: [["pdu-a"]] }, nodes: { n2: [["watchdog"]] } },
    });
    const group = machineFor(topology);
    toFencing(group).result("fence.poweroff", true, 2_200, { facts: { method: "pdu-a", device: "pdu-a", power: "off" } });
    expect(group.context.fence.confirmedBy).toEqual({ by: "power", device: "pdu-a" });
    const own = createHarness(topology, { node: "n2" });
    toFencing(own);
    expect(own.kinds).toEqual(["taint.add", "watchdog.stop"]);
  });

  behaviour(
    "watchdog.stop acknowledged: confirmed once the watchdog timeout passed while the node is silent",
    ["fencing command.result [resultOk(watchdog.stop)]", "fencing timer.fired [timerIsWhileSilent(watchdog-reset)]"],
    () => {
      const h = machineFor();
      toFencing(h).result("watchdog.stop", true, 2_200);
      expect(h.context.fence.watchdogStopAckedAt).toBe(2_200);
      expect(h.context.timers["watchdog-reset"]).toBe(2_200 + 1_500 + 1_000);
      h.fire("watchdog-reset");
      expect(h.reasons[0]).toBe("fencing confirmed: watchdog stop acknowledged and its timeout passed");
      expect(h.context.fence.confirmedBy).toEqual({ by: "watchdog", ackedAt: 2_200, resetBy: 4_700 });
      expect(h.path).toBe("remediating.resolving");
    },
  );

  behaviour(
    "the watchdog deadline passing while the node still heartbeats with its boot id does not confirm",
    ["fencing timer.fired [timerIs(watchdog-reset)]"],
    () => {
      const h = machineFor();
      joined(h).send("signal.unhealthy", { signal: "condition:Ready", since: 0 }, 100);
      h.fire("suspect").result("slot.acquire", true, 1_100);
      expect(h.reasons).toEqual([expect.stringMatching(/still heartbeating: waiting for a positive confirmation/)]);
      expect(h.context.timers).not.toHaveProperty("safe-time");
      h.result("watchdog.stop", true, 1_200).fire("watchdog-reset");
      expect(h.path).toBe("fencing");
      expect(h.reasons[0]).toMatch(/still heartbeats with the same boot id: not confirmed/);
      h.send("heartbeat.missed", { lastSeenAt: 4_000, bootId: "b1" }, 5_000);
      expect(h.context.timers["safe-time"]).toBe(8_000);
      confirmBySafeTime(h);
      expect(h.path).toBe("remediating.resolving");
    },
  );

  behaviour("no confirmation before the fence timeout → operator", ["fencing timer.fired [timerIs(fence-timeout)]"], () => {
    const h = machineFor();
    toFencing(h).send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 3_000);
    h.fire("fence-timeout");
    expect(h.path).toBe("operator");
    expect(h.context.operatorReason).toBe("no fencing confirmation within 10m");
    expect(h.context.timers).toEqual({});
    expect(h.context.slot).toBe(true);
  });

  behaviour("a slot granted while fencing without one (an old snapshot) is released", ["fencing command.result [unwantedSlot]"], () => {
    const h = machineFor();
    toFencing(h);
    h.load({ ...h.state, context: { ...h.context, slot: false } }).result("slot.acquire", true, 2_200);
    expect(h.kinds).toEqual(["slot.release"]);
  });
});

describe("remediating", () => {
  behaviour(
    "Automatic asks the cluster version first, under the step's timeout",
    ["remediating.selecting (always) [stepIsAutomatic]"],
    () => {
      const h = machineFor();
      toResolving(h);
      expect(h.kinds).toEqual(["cluster.version"]);
      expect(h.context.timers).toEqual({ "step-timeout": 15_000 });
    },
  );

  behaviour(
    "Automatic picks OutOfServiceTaint on Kubernetes ≥ 1.28",
    ["remediating.resolving command.result [resultOk(cluster.version)]"],
    () => {
      for (const version of ["1.28", "v1.30.2", "2.0"]) {
        const h = machineFor();
        toResolving(h).result("cluster.version", true, 5_100, { facts: { serverVersion: version } });
        expect(h.path).toBe("remediating.running");
        expect(h.commands).toEqual([
          { kind: "taint.add", params: { taint: OUT_OF_SERVICE_TAINT } },
          { kind: "workloads.await-gone", params: { timeoutMs: 10_000 } },
        ]);
        expect(h.context.remediation).toMatchObject({ strategy: "OutOfServiceTaint", pending: ["taint.add", "workloads.await-gone"] });
        expect(h.context.timers).toEqual({ "step-timeout": 15_100 });
      }
    },
  );

  behaviour(
    "Automatic picks ResourceDeletion below 1.28 or when the version is unknown",
    ["remediating.resolving command.result [resultOk(cluster.version)]"],
    () => {
      for (const facts of [{ serverVersion: "1.27" }, undefined, { serverVersion: "unknown" }]) {
        const h = machineFor();
        toResolving(h).result("cluster.version", true, 5_100, { facts });
        expect(h.kinds).toEqual(["pods.delete"]);
        expect(h.context.remediation.strategy).toBe("ResourceDeletion");
      }
    },
  );

  behaviour(
    "Automatic picks ResourceDeletion when the version lookup fails",
    ["remediating.resolving command.result [resultFailed(cluster.version)]"],
    () => {
      const h = machineFor();
      toResolving(h).result("cluster.version", false, 5_100);
      expect(h.kinds).toEqual(["pods.delete"]);
      expect(h.reasons).toContain("Automatic: Kubernetes version unknown → ResourceDeletion");
    },
  );

  behaviour(
    "no cluster version within the step's timeout → ResourceDeletion",
    ["remediating.resolving timer.fired [timerIs(step-timeout)]"],
    () => {
      const h = machineFor();
      toResolving(h).fire("step-timeout");
      expect(h.path).toBe("remediating.running");
      expect(h.kinds).toEqual(["pods.delete"]);
      expect(h.context.timers).toEqual({ "step-timeout": 25_000 });
    },
  );

  behaviour("other results while resolving are only explained", ["remediating.resolving command.result"], () => {
    const h = machineFor();
    toResolving(h).result("cluster.version", true, 5_100, { epoch: 0, facts: { serverVersion: "1.30" } });
    expect(h.path).toBe("remediating.resolving");
    expect(h.kinds).toEqual([]);
  });

  behaviour("a step that is not Automatic runs at once", ["remediating.selecting (always)"], () => {
    const h = machineFor(DELETION_ONLY_POLICY);
    confirmBySafeTime(toFencing(h));
    expect(h.path).toBe("remediating.running");
    expect(h.kinds).toEqual(["pods.delete"]);
    expect(h.reasons).toContain("remediation step 1/1: ResourceDeletion (timeout 10s)");
  });

  behaviour("ResourceDeletion completes once its pods are force-deleted", ["remediating.running command.result [stepCompleted]"], () => {
    const h = machineFor(DELETION_ONLY_POLICY);
    confirmBySafeTime(toFencing(h)).result("pods.delete", true, 5_100);
    // Its workloads are gone and it is still silent: down, its slot freed.
    expect(h.path).toBe("down");
    expect(h.context.timers).toEqual({});
    expect(h.kinds).toEqual(["slot.release"]);
  });

  behaviour("OutOfServiceTaint waits for both of its results", ["remediating.running command.result"], () => {
    const h = machineFor();
    toRunningOutOfService(h);
    h.result("taint.add", true, 5_200);
    expect(h.path).toBe("remediating.running");
    expect(h.context.remediation.pending).toEqual(["workloads.await-gone"]);
  });

  behaviour(
    "OutOfServiceTaint completes, then the out-of-service taint is removed",
    ["remediating.running command.result [stepCompleted]"],
    () => {
      const h = machineFor();
      toDone(h);
      expect(h.path).toBe("down");
      expect(h.commands).toEqual([
        { kind: "taint.remove", params: { taint: OUT_OF_SERVICE_TAINT } },
        { kind: "slot.release", params: {} },
      ]);
    },
  );

  behaviour("a result of an older epoch does not settle a pending command", ["remediating.running command.result"], () => {
    const h = machineFor(DELETION_ONLY_POLICY);
    confirmBySafeTime(toFencing(h)).result("pods.delete", true, 5_100, { epoch: 0 });
    expect(h.context.remediation.pending).toEqual(["pods.delete"]);
    h.result("pods.delete", false, 5_150, { epoch: 0 });
    expect(h.path).toBe("remediating.running");
    expect(h.context.remediation.pending).toEqual(["pods.delete"]);
  });

  behaviour(
    "a failed step escalates to the next remediation and takes the out-of-service taint off",
    ["remediating.running command.result [stepFailed]", "remediating.escalating (always) [hasNextStep]", "remediating.selecting (always)"],
    () => {
      const h = machineFor();
      toRunningOutOfService(h).result("workloads.await-gone", false, 5_200, { reason: "pods still there" });
      expect(h.path).toBe("remediating.running");
      expect(h.reasons).toContain("OutOfServiceTaint did not complete: escalating to ResourceDeletion");
      expect(h.commands).toEqual([
        { kind: "taint.remove", params: { taint: OUT_OF_SERVICE_TAINT } },
        { kind: "pods.delete", params: {} },
      ]);
      expect(h.context.remediation).toMatchObject({ step: 1, strategy: "ResourceDeletion" });
      expect(h.context.epoch).toBe(1);
    },
  );

  behaviour("a step that times out escalates", ["remediating.running timer.fired [timerIs(step-timeout)]"], () => {
    const h = machineFor();
    toRunningOutOfService(h).fire("step-timeout");
    expect(h.reasons[0]).toBe("remediation step timed out");
    expect(h.context.remediation.step).toBe(1);
    expect(h.path).toBe("remediating.running");
  });

  behaviour("the last step failing → operator with a reason", ["remediating.escalating (always)"], () => {
    const h = machineFor();
    toRunningOutOfService(h).fire("step-timeout").result("pods.delete", false, 15_200);
    expect(h.path).toBe("operator");
    expect(h.context.operatorReason).toBe("every remediation in the escalation list failed");
    expect(h.reasons).toContain("operator required: every remediation in the escalation list failed");
    expect(h.context.timers).toEqual({});
  });

  behaviour(
    "the node back with its old boot id during remediation rejoins once done (then an operator: its fence escaped)",
    ["remediating heartbeat.resumed", "remediating.done (always) [nodeBack]"],
    () => {
      const h = machineFor();
      toRunningOutOfService(h).send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 5_150);
      expect(h.path).toBe("remediating.running");
      expect(h.context.remediation.nodeBack).toBe(true);
      h.result("taint.add", true, 5_200).result("workloads.await-gone", true, 5_300);
      expect(h.path).toBe("operator");
      expect(h.kinds).toEqual(["taint.remove"]);
      expect(h.context.operatorReason).toMatch(/boot id it had before fencing/);

      // Powered off by a fence agent, the same boot id is no escape: it rejoins.
      const agent = machineFor(FENCE_AGENT_POLICY);
      toFencing(agent)
        .result("fence.poweroff", true, 2_200)
        .result("cluster.version", true, 2_300, { facts: { serverVersion: "1.27" } });
      agent.send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 2_350);
      agent.result("pods.delete", true, 2_400);
      expect(agent.path).toBe("rejoining.untainting");
      expect(agent.kinds).toEqual(["taint.remove"]);
    },
  );

  behaviour(
    "node.joined and boot.changed with the old boot id during remediation also mean back",
    ["remediating node.joined", "remediating boot.changed"],
    () => {
      const joinedBack = machineFor();
      toRunningOutOfService(joinedBack).send("node.joined", { bootId: "b1", incarnation: 1 }, 5_150);
      expect(joinedBack.path).toBe("remediating.running");
      expect(joinedBack.context.remediation.nodeBack).toBe(true);
      const bootBack = machineFor();
      toRunningOutOfService(bootBack).send("boot.changed", { previousBootId: "b0", bootId: "b1" }, 5_150);
      expect(bootBack.path).toBe("remediating.running");
      expect(bootBack.context.remediation.nodeBack).toBe(true);
    },
  );

  behaviour(
    "the node back with a new boot id stops remediation and rejoins at once, taking the out-of-service taint off",
    [
      "remediating heartbeat.resumed [rebootedSinceFencing]",
      "remediating node.joined [rebootedSinceFencing]",
      "remediating boot.changed [rebootedSinceFencing]",
    ],
    () => {
      const h = machineFor();
      toRunningOutOfService(h).send("heartbeat.resumed", { bootId: "b2", incarnation: 2 }, 5_150);
      expect(h.path).toBe("rejoining.reprovisioning");
      expect(h.commands).toEqual([
        { kind: "taint.remove", params: { taint: OUT_OF_SERVICE_TAINT } },
        { kind: "reprovision", params: { hostGroup: "db", reason: "rebooted (boot id b1 → b2)", attempt: 1, ticket: 1 } },
      ]);
      expect(h.reasons[0]).toBe("the node is back with a new boot: its old workloads are gone, so remediation stops and the node rejoins");
      expect(h.context.timers).toEqual({ "reprovision-timeout": 15_150 });
      expect(h.context.fencingTaint).toBe(true);
      // The step's late results change nothing.
      h.result("workloads.await-gone", true, 5_200);
      expect(h.path).toBe("rejoining.reprovisioning");
      expect(h.kinds).toEqual([]);

      // ResourceDeletion leaves no taint to take off.
      const deletion = machineFor(DELETION_ONLY_POLICY);
      confirmBySafeTime(toFencing(deletion)).send("node.joined", { bootId: "b2", incarnation: 2 }, 5_150);
      expect(deletion.path).toBe("rejoining.reprovisioning");
      expect(deletion.kinds).toEqual(["reprovision"]);

      // Still asking for the cluster version: no strategy yet, nothing to undo.
      const resolving = machineFor();
      toResolving(resolving).send("boot.changed", { previousBootId: "b1", bootId: "b2" }, 5_050);
      expect(resolving.path).toBe("rejoining.reprovisioning");
      expect(resolving.kinds).toEqual(["reprovision"]);
      expect(resolving.context.timers).toEqual({ "reprovision-timeout": 15_050 });
    },
  );

  behaviour("missing again during remediation: no longer back", ["remediating heartbeat.missed"], () => {
    const h = machineFor();
    toRunningOutOfService(h).send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 5_150);
    h.send("heartbeat.missed", { lastSeenAt: 5_160, bootId: "b1" }, 5_170);
    h.result("taint.add", true, 5_200).result("workloads.await-gone", true, 5_300);
    expect(h.path).toBe("down");
  });

  behaviour(
    "down (done and still silent) waits for the node with its slot freed: heartbeats, node.joined or boot.changed rejoin it",
    ["remediating.done (always)", "down heartbeat.resumed", "down node.joined", "down boot.changed"],
    () => {
      const resumed = machineFor();
      toDone(resumed).send("heartbeat.resumed", { bootId: "b2", incarnation: 2 }, 8_000);
      expect(resumed.path).toBe("rejoining.reprovisioning");
      const joinedBack = machineFor();
      toDone(joinedBack).send("node.joined", { bootId: "b2", incarnation: 2 }, 8_000);
      expect(joinedBack.path).toBe("rejoining.reprovisioning");
      const rebooted = machineFor();
      toDone(rebooted).send("boot.changed", { previousBootId: "b1", bootId: "b2" }, 8_000);
      expect(rebooted.path).toBe("rejoining.reprovisioning");
    },
  );

  behaviour(
    "unfencing: once the workloads moved, a power-fenced node is down (its slot freed) and powered on again, and again while it stays silent (10 s, 20 s, … a minute); back, it rejoins",
    ["down timer.fired [timerIs(unfence-retry)]"],
    () => {
      const h = machineFor(FENCE_AGENT_POLICY);
      toDoneByFenceAgent(h);
      expect(h.path).toBe("down");
      expect(h.commands).toEqual([
        { kind: "slot.release", params: {} },
        { kind: "fence.poweron", params: { hostGroup: "db" } },
      ]);
      expect(h.reasons).toContain("unfencing: powering the node on through power so it boots and rejoins; again in 10s if it stays silent");
      expect(h.context.timers).toEqual({ "unfence-retry": 12_400 }); // done at 2400, + 10 s
      // The BMC refuses: the machine says so and waits for the next try.
      h.result("fence.poweron", false, 2_600, {
        reason: "failed: Set Chassis Power Control to Up/On failed",
        facts: { method: "power", error: "failed" },
      });
      expect(h.reasons).toEqual(["fence.poweron failed: failed: Set Chassis Power Control to Up/On failed"]);
      expect(h.path).toBe("down");
      h.fire("unfence-retry");
      expect(h.kinds).toEqual(["fence.poweron"]);
      expect(h.context.timers).toEqual({ "unfence-retry": 12_400 + 20_000 });
      h.fire("unfence-retry").fire("unfence-retry").fire("unfence-retry");
      expect(h.reasons[0]).toBe(
        "still away: unfencing again (attempt 5): powering the node on through power so it boots and rejoins; again in 1m if it stays silent",
      );
      // Powered on, it boots: a new boot id rejoins it (re-provisioned), and no power-on follows.
      h.send("boot.changed", { previousBootId: "b1", bootId: "b2" }, 200_000);
      expect(h.path).toBe("rejoining.reprovisioning");
      expect(h.context.timers["unfence-retry"]).toBeUndefined();
      expect(h.kinds).toEqual(["reprovision"]);
    },
  );

  behaviour(
    "no unfencing after a watchdog fence, through a method that cannot act on the node, or with unfence: never",
    ["remediating.running command.result [stepCompleted]"],
    () => {
      const watchdog = machineFor();
      toDone(watchdog);
      expect(watchdog.kinds).not.toContain("fence.poweron");
      const refused = machineFor(POWER_LEVELS_POLICY);
      toFencing(refused).result("fence.poweroff", false, 2_200, {
        reason: "invalid-config: fence device ipmi has no entry for n1",
        facts: { method: "ipmi", error: "invalid-config" },
      });
      confirmBySafeTime(refused);
      refused
        .result("cluster.version", true, 5_100, { facts: { serverVersion: "1.30" } })
        .result("taint.add", true, 5_200)
        .result("workloads.await-gone", true, 5_300);
      expect(refused.path).toBe("down");
      expect(refused.kinds).not.toContain("fence.poweron");
      const never = machineFor(
        Policy.parse({ ...FENCE_AGENT_POLICY, version: "test-never", fencing: { ...FENCE_AGENT_POLICY.fencing, unfence: "never" } }),
      );
      toDoneByFenceAgent(never);
      expect(never.path).toBe("down");
      expect(never.kinds).not.toContain("fence.poweron");
      expect(never.context.timers["unfence-retry"]).toBeUndefined();
    },
  );
});

describe("rejoining", () => {
  behaviour("a new boot id re-provisions with the host group", ["rejoining.deciding (always) [needsReprovision]"], () => {
    const h = machineFor();
    toReprovisioning(h);
    expect(reprovisionOf(h)).toEqual({ hostGroup: "db", reason: "rebooted (boot id b1 → b2)", attempt: 1, ticket: 1 });
    expect(h.context.timers).toEqual({ "reprovision-timeout": 18_000 });
  });

  behaviour(
    "re-provisioned, untainted, then healthy with the slot released",
    [
      "rejoining.reprovisioning command.result [resultOk(reprovision)]",
      "rejoining.untainting command.result [resultOk(taint.remove, fenceline.io/fencing)]",
    ],
    () => {
      const h = machineFor();
      // Back with a new boot before remediation finished: it rejoins holding its slot.
      toRunningOutOfService(h).send("heartbeat.resumed", { bootId: "b2", incarnation: 2 }, 5_150).result("reprovision", true, 9_000);
      expect(h.path).toBe("rejoining.untainting");
      expect(h.commands).toEqual([{ kind: "taint.remove", params: { taint: FENCING_TAINT } }]);
      expect(h.context.timers).toEqual({});
      h.result("taint.remove", true, 9_100);
      expect(h.path).toBe("healthy");
      expect(h.kinds).toEqual(["slot.release"]);
      expect(h.context).toMatchObject({
        slot: false,
        epoch: 1,
        bootIdAtFencing: null,
        fence: { confirmedBy: null, watchdogStopAckedAt: null },
        rejoin: { attempt: 0, reprovision: null },
        timers: {},
      });
    },
  );

  behaviour("same boot id and configuration drift → re-provision", ["rejoining.deciding (always) [needsReprovision]"], () => {
    const h = machineFor(FENCE_AGENT_POLICY);
    joined(h, { checksums: { web: "v1" } }).send("config.desired", { checksums: { web: "v2" } }, 10);
    h.send("heartbeat.missed", { lastSeenAt: 1_000, bootId: "b1" }, 2_000).fire("suspect").result("slot.acquire", true, 2_100);
    h.result("fence.poweroff", true, 2_200).result("cluster.version", false, 2_300);
    h.result("pods.delete", true, 2_400);
    h.send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 3_000);
    expect(h.path).toBe("rejoining.reprovisioning");
    expect(reprovisionOf(h)?.reason).toBe("configuration drift in web");
  });

  behaviour("same boot id and configuration as desired → no re-provisioning", ["rejoining.deciding (always)"], () => {
    const h = machineFor(FENCE_AGENT_POLICY);
    toDoneByFenceAgent(h).send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 3_000);
    expect(h.path).toBe("rejoining.untainting");
    expect(h.kinds).toEqual(["taint.remove"]);
    expect(h.reasons).toContain("same boot id, configuration as desired: no re-provisioning");
  });

  behaviour(
    "fence escaped: the same boot id after fencing confirmed by time → operator",
    ["rejoining.deciding (always) [fenceEscaped]"],
    () => {
      const h = machineFor();
      toDone(h).send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 8_000);
      expect(h.path).toBe("operator");
      expect(h.context.operatorReason).toMatch(/boot id it had before fencing/);
      expect(h.kinds).not.toContain("taint.remove");
    },
  );

  behaviour(
    "re-provisioning failures retry with exponential backoff, then an operator after 3 attempts",
    [
      "rejoining.reprovisioning command.result [resultFailed(reprovision)]",
      "rejoining.retryingReprovision (always) [attemptsLeft]",
      "rejoining.reprovisionBackoff timer.fired [timerIs(reprovision-retry)]",
      "rejoining.retryingReprovision (always)",
    ],
    () => {
      const h = machineFor();
      toReprovisioning(h).result("reprovision", false, 8_100, { reason: "ansible failed" });
      expect(h.path).toBe("rejoining.reprovisionBackoff");
      expect(h.context.timers).toEqual({ "reprovision-retry": 8_600 });
      h.fire("reprovision-retry");
      expect(reprovisionOf(h)?.attempt).toBe(2);
      h.result("reprovision", false, 8_700);
      expect(h.context.timers).toEqual({ "reprovision-retry": 9_700 });
      h.fire("reprovision-retry");
      expect(reprovisionOf(h)?.attempt).toBe(3);
      h.result("reprovision", false, 9_800);
      expect(h.path).toBe("operator");
      expect(h.context.operatorReason).toBe("re-provisioning failed 3 times");
      expect(h.context.timers).toEqual({});
    },
  );

  behaviour(
    "a re-provisioning timeout counts as a failed attempt",
    ["rejoining.reprovisioning timer.fired [timerIs(reprovision-timeout)]"],
    () => {
      const h = machineFor();
      toReprovisioning(h).fire("reprovision-timeout");
      expect(h.reasons[0]).toBe("re-provisioning timed out");
      expect(h.path).toBe("rejoining.reprovisionBackoff");
      expect(h.context.timers).toEqual({ "reprovision-retry": 18_500 });
    },
  );

  behaviour("other results while re-provisioning are only explained", ["rejoining.reprovisioning command.result"], () => {
    const h = machineFor();
    toReprovisioning(h).result("reprovision", true, 8_100, { epoch: 0 });
    expect(h.path).toBe("rejoining.reprovisioning");
  });

  behaviour(
    "silent again after a reboot confirmed its fencing: suspect, keeping slot and taint, then fenced with a new epoch",
    ["rejoining heartbeat.missed", "suspect.requestingSlot (always) [holdsSlot]"],
    () => {
      const h = machineFor();
      toFencing(h).send("heartbeat.resumed", { bootId: "b2", incarnation: 2 }, 3_000);
      expect(h.path).toBe("rejoining.reprovisioning");
      h.send("heartbeat.missed", { lastSeenAt: 3_100, bootId: "b2" }, 4_000);
      expect(h.path).toBe("suspect.waiting");
      expect(h.reasons[0]).toBe(
        "the node went silent again after it came back: its new boot may run workloads, so it is suspect again and will be fenced with a new epoch",
      );
      expect(h.context).toMatchObject({ slot: true, fencingTaint: true, epoch: 1 });
      expect(h.context.timers).toEqual({ suspect: 4_100 });
      h.fire("suspect");
      expect(h.path).toBe("fencing");
      expect(h.commands).toEqual([
        { kind: "taint.add", params: { taint: FENCING_TAINT } },
        { kind: "watchdog.stop", params: { reason: "fencing epoch 2", bootId: "b2" } },
      ]);
      expect(h.context).toMatchObject({ epoch: 2, bootIdAtFencing: "b2", fence: { confirmedBy: null, checkingMajority: false } });
      expect(h.context.timers).toEqual({ "safe-time": 7_100, "fence-timeout": 604_100 });
      // This epoch was not confirmed by a reboot: once confirmed, remediation runs.
      confirmBySafeTime(h);
      expect(h.path).toBe("remediating.resolving");
      expect(h.context.epoch).toBe(2);
    },
  );

  behaviour("back before the suspect timer with its fencing taint: rejoining, not healthy", ["recovered (always) [needsRejoin]"], () => {
    const h = machineFor();
    toFencing(h).send("heartbeat.resumed", { bootId: "b2", incarnation: 2 }, 3_000);
    h.send("heartbeat.missed", { lastSeenAt: 3_100, bootId: "b2" }, 4_000);
    h.send("heartbeat.resumed", { bootId: "b2", incarnation: 2 }, 4_050);
    expect(h.path).toBe("rejoining.reprovisioning");
    expect(reprovisionOf(h)).toMatchObject({ reason: "rebooted (boot id b1 → b2)", ticket: 2 });
    expect(h.context).toMatchObject({ slot: true, fencingTaint: true, epoch: 1 });
  });

  behaviour(
    "a node never fenced going silent mid-rejoin is suspect again, and rejoins for the same reason when back",
    ["rejoining heartbeat.missed", "recovered (always) [needsRejoin]"],
    () => {
      const h = machineFor();
      joined(h).send("boot.changed", { previousBootId: "b1", bootId: "b2" }, 100);
      h.send("heartbeat.missed", { lastSeenAt: 200, bootId: "b2" }, 1_200);
      expect(h.path).toBe("suspect.waiting");
      expect(h.reasons).toContain("the node went silent mid-rejoin: suspect again");
      expect(h.context.timers).toEqual({ suspect: 1_200 });
      expect(h.context).toMatchObject({ slot: false, fencingTaint: false, rejoin: { reprovision: "rebooted (boot id b1 → b2)" } });
      // markDriftOrNothing keeps the pending reason (no drift here to replace it with).
      h.send("heartbeat.resumed", { bootId: "b2", incarnation: 2 }, 1_300);
      expect(h.path).toBe("rejoining.reprovisioning");
      expect(reprovisionOf(h)).toMatchObject({ reason: "rebooted (boot id b1 → b2)", ticket: 2 });
    },
  );

  behaviour("a reboot mid-rejoin decides again", ["rejoining boot.changed"], () => {
    const h = machineFor();
    toReprovisioning(h).result("reprovision", true, 9_000);
    h.send("boot.changed", { previousBootId: "b2", bootId: "b3" }, 9_050);
    expect(h.path).toBe("rejoining.reprovisioning");
    expect(reprovisionOf(h)).toMatchObject({ reason: "rebooted (boot id b2 → b3)", attempt: 1 });
  });

  behaviour(
    "a failed untaint is retried",
    [
      "rejoining.untainting command.result [resultFailed(taint.remove, fenceline.io/fencing)]",
      "rejoining.untainting timer.fired [timerIs(untaint-retry)]",
      "rejoining.untainting command.result",
    ],
    () => {
      const h = machineFor();
      toReprovisioning(h).result("reprovision", true, 9_000).result("taint.remove", false, 9_100, { reason: "API down" });
      expect(h.path).toBe("rejoining.untainting");
      expect(h.context.timers).toEqual({ "untaint-retry": 10_100 });
      h.result("pods.delete", true, 9_200);
      expect(h.path).toBe("rejoining.untainting");
      h.fire("untaint-retry");
      expect(h.commands).toEqual([{ kind: "taint.remove", params: { taint: FENCING_TAINT } }]);
      h.result("taint.remove", true, 10_200);
      expect(h.path).toBe("healthy");
    },
  );

  behaviour(
    "with a healthy delay the node settles before it is rejoined",
    [
      "rejoining.deciding (always) [settleFirst]",
      "rejoining.settling timer.fired [timerIs(healthy-delay)]",
      "rejoining.settled (always) [needsReprovision]",
      "rejoining.settled (always)",
    ],
    () => {
      const h = machineFor(SETTLING_POLICY);
      toReprovisioning(h);
      expect(h.path).toBe("rejoining.settling");
      expect(h.kinds).toEqual([]);
      expect(h.context.timers).toEqual({ "healthy-delay": 10_000 });
      h.fire("healthy-delay");
      expect(h.path).toBe("rejoining.reprovisioning");

      const agent = machineFor(Policy.parse({ ...FENCE_AGENT_POLICY, rejoin: SETTLING_POLICY.rejoin }));
      toDoneByFenceAgent(agent).send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 3_000);
      agent.fire("healthy-delay");
      expect(agent.path).toBe("rejoining.untainting");
    },
  );
});

describe("paused", () => {
  behaviour("pausing again updates the reason", ["paused operator.pause"], () => {
    const h = machineFor();
    joined(h).send("operator.pause", { reason: "one" }, 10).send("operator.pause", { reason: "two" }, 20);
    expect(h.path).toBe("paused");
    expect(h.context.pausedReason).toBe("two");
  });

  behaviour("resume → suspect when the node is still unhealthy", ["paused operator.resume [hasSignals]"], () => {
    const h = machineFor();
    toSuspect(h).send("operator.pause", { reason: "look" }, 2_000).send("operator.resume", {}, 9_000);
    expect(h.path).toBe("suspect.waiting");
    expect(h.context.pausedReason).toBeNull();
    expect(h.context.timers).toEqual({ suspect: 9_000 });
  });

  behaviour("resume → healthy when the node recovered meanwhile", ["paused operator.resume"], () => {
    const h = machineFor();
    toSuspect(h).send("operator.pause", { reason: "look" }, 2_000);
    h.send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 3_000).send("operator.resume", {}, 4_000);
    expect(h.path).toBe("healthy");
  });

  behaviour(
    "resume → rejoining when the node was rebooted while paused",
    ["paused boot.changed", "paused operator.resume [needsRejoin]"],
    () => {
      const h = machineFor();
      joined(h).send("operator.pause", { reason: "maintenance" }, 1_000);
      h.send("boot.changed", { previousBootId: "b1", bootId: "b2" }, 2_000);
      expect(h.path).toBe("paused");
      h.send("operator.resume", {}, 3_000);
      expect(h.path).toBe("rejoining.reprovisioning");
      expect(h.context.rejoin.reprovision).toBe("rebooted (boot id b1 → b2)");
    },
  );

  behaviour("a slot granted after the pause is released", ["node command.result [unwantedSlot]"], () => {
    const h = machineFor();
    toSuspect(h).fire("suspect");
    h.send("operator.pause", { reason: "look" }, 2_050).result("slot.acquire", true, 2_100);
    expect(h.path).toBe("paused");
    expect(h.kinds).toEqual(["slot.release"]);
  });
});

describe("operator", () => {
  behaviour("operator.reset of a node that is heard rejoins with re-provisioning", ["operator operator.reset"], () => {
    const h = machineFor();
    toFencing(h)
      .fire("fence-timeout")
      .send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 650_000)
      .send("operator.reset", { reason: "replaced the PSU" }, 700_000);
    expect(h.path).toBe("rejoining.reprovisioning");
    expect(reprovisionOf(h)).toEqual({ hostGroup: "db", reason: "operator reset: replaced the PSU", attempt: 1, ticket: 1 });
    expect(h.context.operatorReason).toBeNull();
  });

  behaviour(
    "operator.reset of a silent node never confirmed fenced is the operator's confirmation: its workloads move",
    ["operator operator.reset [silentUnfenced]"],
    () => {
      const h = machineFor();
      toFencing(h).fire("fence-timeout").send("operator.reset", { reason: "powered off at the PDU" }, 700_000);
      expect(h.path).toBe("remediating.resolving");
      expect(h.context.fence.confirmedBy).toEqual({ by: "operator", reason: "powered off at the PDU" });
      expect(h.reasons[0]).toBe("fencing confirmed: an operator: powered off at the PDU");
      expect(h.context.operatorReason).toBeNull();
    },
  );

  behaviour(
    "operator.reset of a silent node whose workloads are gone: down, its slot freed",
    ["operator operator.reset [nodeSilent]"],
    () => {
      const h = machineFor();
      toRunningOutOfService(h).fire("step-timeout");
      h.result("pods.delete", false, 16_000, { reason: "API down" });
      expect(h.path).toBe("operator");
      h.send("operator.reset", { reason: "pods cleaned by hand" }, 20_000);
      expect(h.path).toBe("down");
      expect(h.kinds).toEqual(["slot.release"]);
      expect(h.context.rejoin.reprovision).toBe("operator reset: pods cleaned by hand");
    },
  );

  behaviour("heartbeats while waiting for an operator are only recorded", ["operator heartbeat.resumed"], () => {
    const h = machineFor();
    toFencing(h).fire("fence-timeout").send("heartbeat.resumed", { bootId: "b2", incarnation: 2 }, 700_000);
    expect(h.path).toBe("operator");
    expect(h.context.bootId).toBe("b2");
    expect(h.emitted).toEqual([]);
  });
});

describe("the fencing contract decides whether time is proof", () => {
  const weak = (policy: Policy = TEST_POLICY) =>
    createHarness(policy, { contract: contractFor(policy, { watchdog: { kind: "software", timeoutMs: 1_500 } }) });

  it("a silent node whose contract does not support it gets no safe time: the audit says why and what is waited for", () => {
    for (const h of [
      weak(),
      createHarness(TEST_POLICY, { contract: null }),
      createHarness(TEST_POLICY, { contract: contractFor(TEST_POLICY, { membershipVersion: 0 }) }),
    ]) {
      toFencing(h);
      expect(h.path).toBe("fencing");
      expect(h.context.timers).toEqual({ "fence-timeout": 602_100 });
      expect(h.reasons[0]).toMatch(
        /^fencing, epoch 1; silent since 1000; not assuming it fenced by time: .*; waiting for a new boot id or an operator \(fenceline reset n1 --reason … once it is off\)$/,
      );
      // Silent again: still nothing by time.
      h.send("heartbeat.missed", { lastSeenAt: 1_000, bootId: "b1" }, 3_000);
      expect(h.context.timers).toEqual({ "fence-timeout": 602_100 });
      // A new boot is proof.
      h.send("heartbeat.resumed", { bootId: "b2", incarnation: 2 }, 9_000);
      expect(h.path).toBe("rejoining.reprovisioning");
    }
  });

  it("an acknowledged watchdog.stop is no proof either for such a node", () => {
    const h = weak();
    toFencing(h).result("watchdog.stop", true, 2_200);
    expect(h.context.timers).not.toHaveProperty("watchdog-reset");
    expect(h.reasons[0]).toMatch(
      /^agent stopped feeding its watchdog; not assuming it fenced by time: the agent's contract is weaker than the policy: no watchdog device/,
    );
  });

  it("a contract weakened while fencing (a restarted agent) stops the safe time from confirming", () => {
    const h = createHarness(TEST_POLICY);
    toFencing(h).send(
      "contract.reported",
      { bootId: "b1", contract: contractFor(TEST_POLICY, { timing: { ...TEST_POLICY.agent, controlPlaneTimeoutMs: 3_000 } }) },
      2_500,
    );
    h.fire("safe-time").result("slot.acquire", true, 5_000, { facts: { majoritySince: 0 } });
    expect(h.path).toBe("fencing");
    expect(h.context.fence.confirmedBy).toBeNull();
    expect(h.reasons[0]).toMatch(/^not assuming it fenced by time: .*controlPlaneTimeoutMs 3s is longer than the policy's 1s/);
  });

  it("the slot request carries the membership version of the node's last contract", () => {
    const h = createHarness(TEST_POLICY, { contract: contractFor(TEST_POLICY, { membershipVersion: 7 }) });
    toSuspect(h).fire("suspect");
    expect(h.commands).toEqual([{ kind: "slot.acquire", params: { controlPlane: false, membershipVersion: 7 } }]);
    const none = createHarness(TEST_POLICY, { contract: null });
    toSuspect(none).fire("suspect");
    expect(none.commands).toEqual([{ kind: "slot.acquire", params: { controlPlane: false } }]);
  });
});

describe("operator.reset in the other states", () => {
  behaviour(
    "while fencing, reset is an operator's confirmation that the node is off: its workloads move",
    ["fencing operator.reset"],
    () => {
      const h = machineFor();
      toFencing(h).send("operator.reset", { reason: "powered off by hand" }, 2_500);
      expect(h.path).toBe("remediating.resolving");
      expect(h.context.fence.confirmedBy).toEqual({ by: "operator", reason: "powered off by hand" });
    },
  );

  behaviour(
    "while remediating, reset ends the remediation: down while silent, rejoining when back",
    ["remediating operator.reset", "remediating operator.reset [nodeBack]"],
    () => {
      const silent = machineFor();
      toRunningOutOfService(silent).send("operator.reset", { reason: "moved by hand" }, 5_150);
      expect(silent.path).toBe("down");
      expect(silent.commands).toEqual([
        { kind: "taint.remove", params: { taint: OUT_OF_SERVICE_TAINT } },
        { kind: "slot.release", params: {} },
      ]);
      // Powered off by a fence agent, back with the same boot id (it was powered on again).
      const back = machineFor(FENCE_AGENT_POLICY);
      toFencing(back)
        .result("fence.poweroff", true, 2_200)
        .result("cluster.version", true, 2_300, { facts: { serverVersion: "1.27" } });
      back.send("heartbeat.resumed", { bootId: "b1", incarnation: 1 }, 2_350).send("operator.reset", { reason: "checked" }, 2_400);
      expect(back.path).toBe("rejoining.reprovisioning");
      expect(reprovisionOf(back)).toMatchObject({ reason: "operator reset: checked" });
    },
  );

  behaviour("while rejoining, reset decides again with a re-provisioning", ["rejoining operator.reset"], () => {
    const h = machineFor();
    toRunningOutOfService(h).send("heartbeat.resumed", { bootId: "b2", incarnation: 2 }, 5_150).result("reprovision", true, 9_000);
    expect(h.path).toBe("rejoining.untainting");
    h.send("operator.reset", { reason: "again" }, 9_050);
    expect(h.path).toBe("rejoining.reprovisioning");
    expect(reprovisionOf(h)).toMatchObject({ reason: "operator reset: again", attempt: 1 });
  });

  behaviour(
    "while paused, reset resumes it with a re-provisioning",
    ["paused operator.reset [hasSignals]", "paused operator.reset"],
    () => {
      const sick = machineFor();
      toSuspect(sick).send("operator.pause", { reason: "x" }, 1_500).send("operator.reset", { reason: "fixed" }, 1_600);
      expect(sick.path).toBe("suspect.waiting");
      expect(sick.context).toMatchObject({ pausedReason: null, rejoin: { reprovision: "operator reset: fixed" } });
      const fine = machineFor();
      joined(fine).send("operator.pause", { reason: "x" }, 100).send("operator.reset", { reason: "fixed" }, 200);
      expect(fine.path).toBe("rejoining.reprovisioning");
    },
  );
});

describe("forgotten", () => {
  const forgotten = (h: ReturnType<typeof machineFor>) => h.send("node.forgotten", { reason: "gone" }, 3_000);

  behaviour(
    "heard again, a forgotten node comes back: healthy, or rejoining when it was tainted",
    [
      "forgotten heartbeat.resumed",
      "forgotten node.joined",
      "forgotten boot.changed",
      "forgotten heartbeat.resumed [needsRejoin]",
      "forgotten node.joined [needsRejoin]",
      "forgotten boot.changed [needsRejoin]",
    ],
    () => {
      for (const [event, data] of [
        ["heartbeat.resumed", { bootId: "b1", incarnation: 2 }],
        ["node.joined", { bootId: "b1", incarnation: 2 }],
        ["boot.changed", { previousBootId: "b0", bootId: "b1" }],
      ] as const) {
        const clean = machineFor();
        forgotten(toSuspect(clean)).send(event, data as never, 4_000);
        expect(clean.path, event).toBe("healthy");
        expect(clean.context.forgottenReason).toBeNull();
        const tainted = machineFor();
        forgotten(toFencing(tainted)).send(event, data as never, 4_000);
        expect(tainted.path, event).toBe("rejoining.untainting");
      }
    },
  );

  behaviour(
    "everything else leaves a forgotten node where it is",
    [
      "forgotten heartbeat.missed",
      "forgotten signal.unhealthy",
      "forgotten operator.pause",
      "forgotten operator.reset",
      "forgotten node.forgotten",
      "forgotten command.result [unwantedSlot]",
      "forgotten command.result",
    ],
    () => {
      const h = machineFor();
      forgotten(toSuspect(h));
      h.send("heartbeat.missed", { lastSeenAt: 1_000, bootId: "b1" }, 3_100).send(
        "signal.unhealthy",
        { signal: "serf", since: 3_000 },
        3_200,
      );
      h.send("operator.pause", { reason: "x" }, 3_300)
        .send("operator.reset", { reason: "x" }, 3_400)
        .send("node.forgotten", { reason: "again" }, 3_500);
      expect(h.path).toBe("forgotten");
      h.result("slot.acquire", true, 3_600);
      expect(h.kinds).toEqual(["slot.release"]);
      h.result("taint.add", true, 3_700);
      expect(h.path).toBe("forgotten");
      expect(h.context.timers).toEqual({});
    },
  );
});

describe("epochs", () => {
  behaviour("the epoch is carried across lifecycles and grows with each fencing", [], () => {
    const h = machineFor();
    toReprovisioning(h).result("reprovision", true, 9_000).result("taint.remove", true, 9_100);
    expect(h.context.epoch).toBe(1);
    h.send("heartbeat.missed", { lastSeenAt: 10_000, bootId: "b2" }, 11_000).fire("suspect").result("slot.acquire", true, 11_100);
    expect(h.path).toBe("fencing");
    expect(h.context).toMatchObject({ epoch: 2, bootIdAtFencing: "b2", fence: { confirmedBy: null } });
    expect(h.commands[1]).toEqual({ kind: "watchdog.stop", params: { reason: "fencing epoch 2", bootId: "b2" } });
  });

  behaviour("a watchdog acknowledgement of an older epoch arms nothing", ["fencing command.result"], () => {
    const h = machineFor();
    toFencing(h).result("watchdog.stop", true, 2_200, { epoch: 0 });
    expect(h.context.timers).not.toHaveProperty("watchdog-reset");
  });

  behaviour("the boot id of a missed heartbeat is adopted when none is known, so a reboot still confirms", [], () => {
    const h = machineFor();
    h.send("heartbeat.missed", { lastSeenAt: 1_000, bootId: "b1" }, 2_000).fire("suspect").result("slot.acquire", true, 2_100);
    expect(h.context.bootIdAtFencing).toBe("b1");
    h.send("heartbeat.resumed", { bootId: "b2", incarnation: 2 }, 3_000);
    expect(h.context.fence.confirmedBy).toEqual({ by: "reboot", bootIdAtFencing: "b1", bootId: "b2" });
    expect(h.path).toBe("rejoining.reprovisioning");
  });
});

describe("the whole lifecycle", () => {
  it("walks a crashed node from healthy through fencing, remediation and rejoin back to healthy", () => {
    const h = machineFor();
    joined(h).send("heartbeat.missed", { lastSeenAt: 1_000, bootId: "b1" }, 2_000);
    const path = [h.path];
    h.fire("suspect").result("slot.acquire", true, 2_100);
    path.push(h.path);
    h.fire("safe-time");
    path.push(h.path);
    h.result("slot.acquire", true, 5_050, { facts: { majoritySince: 0 } });
    path.push(h.path);
    h.result("cluster.version", true, 5_100, { facts: { serverVersion: "1.30" } });
    h.result("taint.add", true, 5_200).result("workloads.await-gone", true, 5_300);
    path.push(h.path);
    h.send("boot.changed", { previousBootId: "b1", bootId: "b2" }, 8_000)
      .result("reprovision", true, 9_000)
      .result("taint.remove", true, 9_100);
    path.push(h.path);
    expect(path).toEqual(["suspect.waiting", "fencing", "fencing", "remediating.resolving", "down", "healthy"]);
    expect(
      h.history.flatMap((s) => s.emitted.filter((e) => e.type === "command").map((e) => e.type === "command" && e.request.kind)),
    ).toEqual([
      "slot.acquire",
      "taint.add",
      "watchdog.stop",
      "slot.acquire",
      "cluster.version",
      "taint.add",
      "workloads.await-gone",
      "taint.remove",
      "slot.release",
      "reprovision",
      "taint.remove",
    ]);
  });
});

describe("coverage", () => {
  const exported = exportedKeys(TEST_POLICY);

  it("names each transition of the machine once (source, event, guard)", () => {
    expect(new Set(exported).size).toBe(exported.length);
    expect(exportedKeys(FENCE_AGENT_POLICY)).toEqual(exported);
  });

  it("has a test for every transition of the machine", () => {
    expect(exported.filter((key) => !claims.has(key))).toEqual([]);
  });

  it("claims only transitions the machine has", () => {
    expect([...claims.keys()].filter((key) => !exported.includes(key))).toEqual([]);
  });
});
