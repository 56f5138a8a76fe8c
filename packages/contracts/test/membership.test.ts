import { describe, expect, it } from "vitest";
import {
  AgentContract,
  createMembershipView,
  DEFAULT_POLICY,
  engineHasMajority,
  contractMeeting,
  fencingGuarantee,
  groupHasMajority,
  Heartbeat,
  HeartbeatAck,
  MembershipView,
  Policy,
  sameMembership,
  votesOf,
  withdrawnContract,
  witnessVote,
  type AgentContract as Contract,
} from "@fenceline/contracts";

const view = (n: number, witness = true) =>
  createMembershipView(
    1,
    witness,
    Array.from({ length: n }, (_, i) => ({ node: `node-${i + 1}`, peerUrl: `http://10.0.0.${i + 1}:9797` })),
  );

describe("membership view", () => {
  it("sorts members and drops duplicates; the schema refuses an unsorted list", () => {
    const v = createMembershipView(3, true, [{ node: "b" }, { node: "a", peerUrl: "http://a" }, { node: "b", peerUrl: "http://b2" }]);
    expect(v).toEqual({ v: 1, version: 3, witness: true, members: [{ node: "a", peerUrl: "http://a" }, { node: "b" }] });
    expect(MembershipView.safeParse(v).success).toBe(true);
    expect(MembershipView.safeParse({ ...v, members: [...v.members].reverse() }).success).toBe(false);
    expect(MembershipView.safeParse({ ...v, version: 0 }).success).toBe(false);
  });

  it("counts the witness vote only in a view of even size with the witness on", () => {
    expect([1, 2, 3, 4, 5].map((n) => witnessVote(view(n)))).toEqual([0, 1, 0, 1, 0]);
    expect(witnessVote(view(4, false))).toBe(0);
    expect([1, 2, 3, 4, 5].map((n) => votesOf(view(n)))).toEqual([1, 3, 3, 5, 5]);
  });

  it("never lets both sides have a majority: healthy + lost ≤ members (every size, witness on and off)", () => {
    for (const witness of [true, false]) {
      for (let n = 1; n <= 12; n++) {
        const v = view(n, witness);
        for (let healthy = 0; healthy <= n; healthy++) {
          for (let lost = 0; healthy + lost <= n; lost++) {
            expect(
              engineHasMajority(v, healthy) && groupHasMajority(v, lost),
              `n=${n} healthy=${healthy} lost=${lost} witness=${witness}`,
            ).toBe(false);
          }
        }
      }
    }
  });

  it("resolves the two-node and the even split with the witness, and only then", () => {
    expect(engineHasMajority(view(2), 1)).toBe(true);
    expect(groupHasMajority(view(2), 1)).toBe(false);
    expect(groupHasMajority(view(2), 2)).toBe(true);
    expect(engineHasMajority(view(2, false), 1)).toBe(false);
    expect(engineHasMajority(view(4), 2)).toBe(true);
    expect(groupHasMajority(view(4), 2)).toBe(false);
    expect(engineHasMajority(view(1), 0)).toBe(false);
    expect(groupHasMajority(view(1), 1)).toBe(true);
  });

  it("a stale, smaller view is what makes the two sides disagree (the reason the guard checks every view an agent may hold)", () => {
    const grown = view(7);
    const stale = view(5);
    // The fleet grew from 5 to 7: 4 of 7 healthy is a majority for the engine, and the 3 cut-off
    // nodes that still hold the 5-member view count 3 of 5, a majority too.
    expect(engineHasMajority(grown, 4)).toBe(true);
    expect(groupHasMajority(stale, 3)).toBe(true);
    // Counted in the stale view, the engine's 4 healthy include 2 members the stale view lacks.
    expect(engineHasMajority(stale, 2)).toBe(false);
  });

  it("compares membership without the version", () => {
    const newer = { ...view(3), version: 9 };
    expect(sameMembership(view(3), newer)).toBe(true);
    expect(sameMembership(view(3), view(3, false))).toBe(false);
    expect(sameMembership(view(3), view(4))).toBe(false);
  });
});

const contract = (patch: Partial<Contract> = {}): Contract => ({
  timing: { controlPlaneTimeoutMs: 5_000, peerRoundMs: 2_000, watchdogTimeoutMs: 10_000, marginMs: 5_000 },
  heartbeatIntervalMs: 1_000,
  watchdog: { kind: "hardware", timeoutMs: 10_000 },
  membershipVersion: 4,
  ...patch,
});

describe("heartbeat contract", () => {
  it("parses a heartbeat with its contract and peer URL, and an ack with a view", () => {
    const hb = { v: 1, node: "w-1", bootId: "b", incarnation: 1, seq: 0, sentAt: 1, contract: contract(), peerUrl: "http://10.0.0.1:9797" };
    expect(Heartbeat.safeParse(hb).success).toBe(true);
    expect(Heartbeat.safeParse({ ...hb, contract: { ...contract(), watchdog: { kind: "magic", timeoutMs: 1 } } }).success).toBe(false);
    expect(HeartbeatAck.safeParse({ v: 1, node: "w-1", at: 1, membership: { version: 1, view: view(3) } }).success).toBe(true);
    expect(
      HeartbeatAck.safeParse({
        v: 1,
        node: "w-1",
        at: 1,
        membership: { version: 1, view: { ...view(3), members: [{ node: "x" }, { node: "a" }] } },
      }).success,
    ).toBe(false);
    expect(AgentContract.parse(withdrawnContract(contract()))).toMatchObject({ withdrawn: true, watchdog: { kind: "none", timeoutMs: 0 } });
  });
});

describe("fencing guarantee", () => {
  it("is watchdog for a trusted device, timing within the policy and a view", () => {
    const g = fencingGuarantee(contract(), DEFAULT_POLICY);
    expect(g).toMatchObject({ guarantee: "watchdog", timeBased: true, weak: false });
    expect(g.reason).toBe("hardware watchdog (10s), timing within the policy, membership view v4");
    expect(fencingGuarantee(contract({ watchdog: { kind: "softdog", timeoutMs: 9_000 } }), DEFAULT_POLICY).guarantee).toBe("watchdog");
  });

  it("is none, and says why, for every way a contract falls short", () => {
    const cases: Array<[Contract | null, RegExp, boolean]> = [
      [null, /no fencing contract heard/, false],
      [withdrawnContract(contract()), /stopped cleanly/, false],
      [contract({ watchdog: { kind: "software", timeoutMs: 10_000 } }), /software reboot timer, which dies with the agent/, true],
      [contract({ watchdog: { kind: "none", timeoutMs: 10_000 } }), /feeds no watchdog device/, true],
      [contract({ watchdog: { kind: "hardware", timeoutMs: 15_000 } }), /watchdog timeout 15s is longer than the policy's 10s/, true],
      [
        contract({ timing: { controlPlaneTimeoutMs: 8_000, peerRoundMs: 2_000, watchdogTimeoutMs: 10_000, marginMs: 5_000 } }),
        /controlPlaneTimeoutMs 8s is longer than the policy's 5s/,
        true,
      ],
      [
        contract({ timing: { controlPlaneTimeoutMs: 5_000, peerRoundMs: 3_000, watchdogTimeoutMs: 10_000, marginMs: 0 } }),
        /peerRoundMs 3s/,
        true,
      ],
      [contract({ heartbeatIntervalMs: 2_000 }), /heartbeat interval 2s/, true],
      [contract({ membershipVersion: 0 }), /no membership view/, true],
    ];
    for (const [c, why, weak] of cases) {
      const g = fencingGuarantee(c, DEFAULT_POLICY);
      expect(g.guarantee, String(why)).toBe("none");
      expect(g.timeBased).toBe(false);
      expect(g.weak, String(why)).toBe(weak);
      expect(g.reason).toMatch(why);
    }
  });

  it("names every shortfall of a contract, not only the first", () => {
    expect(fencingGuarantee(contract({ heartbeatIntervalMs: 2_000, membershipVersion: 0 }), DEFAULT_POLICY).reason).toBe(
      "the agent's contract is weaker than the policy: its heartbeat interval 2s is longer than the policy's 1s; it holds no membership view yet",
    );
  });

  it("follows the policy's trusted kinds and whether a level has the watchdog", () => {
    const hardwareOnly = Policy.parse({ fencing: { watchdogKinds: ["hardware"] } });
    const softdog = fencingGuarantee(contract({ watchdog: { kind: "softdog", timeoutMs: 10_000 } }), hardwareOnly);
    expect(softdog).toMatchObject({ guarantee: "none", weak: true });
    expect(softdog.reason).toMatch(/softdog watchdog is not one the policy trusts \(fencing.watchdogKinds: hardware\)/);
    expect(Policy.safeParse({ fencing: { watchdogKinds: ["software"] } }).success).toBe(false);
    const noWatchdog = Policy.parse({ fencing: { levels: [["ipmi"]] } });
    const g = fencingGuarantee(contract(), noWatchdog, [{ methods: ["pdu-a", "pdu-b"], timeoutMs: 60_000 }]);
    expect(g).toMatchObject({ guarantee: "power", timeBased: false, weak: false });
    expect(g.reason).toBe("fenced by power: level 1/1 [pdu-a, pdu-b] powers it off and reads it back");
  });

  it("is power when one of the node's levels powers it off, time-based or not", () => {
    const levels = [
      { methods: ["ipmi"], timeoutMs: 20_000 },
      { methods: ["watchdog"], timeoutMs: 600_000 },
    ];
    expect(fencingGuarantee(null, DEFAULT_POLICY, levels)).toMatchObject({
      guarantee: "power",
      timeBased: false,
      reason: "fenced by power: level 1/2 [ipmi] powers it off and reads it back",
    });
    const both = fencingGuarantee(contract(), DEFAULT_POLICY, levels);
    expect(both).toMatchObject({ guarantee: "power", timeBased: true });
    expect(both.reason).toMatch(/^fenced by power: level 1\/2 \[ipmi\] powers it off and reads it back; also hardware watchdog/);
    // Per node: another node of the same policy has only the watchdog.
    const perNode = Policy.parse({ fencing: { nodes: { "w-1": [["ipmi"], ["watchdog"]] } } });
    expect(fencingGuarantee(contract(), perNode).guarantee).toBe("watchdog");
  });
  it("names only the power methods of a level that mixes them with the watchdog", () => {
    const levels = [
      { methods: ["watchdog"], timeoutMs: 600_000 },
      { methods: ["watchdog", "ipmi"], timeoutMs: 20_000 },
    ];
    expect(fencingGuarantee(null, DEFAULT_POLICY, levels)).toMatchObject({
      guarantee: "power",
      reason: "fenced by power: level 2/2 [ipmi] powers it off and reads it back",
    });
  });

  it("is none when no level has the watchdog, however good the contract", () => {
    expect(fencingGuarantee(contract(), DEFAULT_POLICY, [])).toEqual({
      guarantee: "none",
      reason: "none of its fencing levels has the watchdog (fencing.levels)",
      timeBased: false,
      weak: false,
    });
  });

  it("contractMeeting gives the contract a policy counts on: a hardware watchdog, its timing, a view", () => {
    const policy = Policy.parse({ agent: { watchdogTimeoutMs: 12_000 }, heartbeat: { intervalMs: 500 } });
    const met = contractMeeting(policy);
    expect(AgentContract.parse(met)).toEqual(met);
    expect(met).toMatchObject({
      timing: policy.agent,
      heartbeatIntervalMs: 500,
      watchdog: { kind: "hardware", timeoutMs: 12_000 },
      membershipVersion: 1,
    });
    expect(fencingGuarantee(met, policy)).toEqual({
      guarantee: "watchdog",
      reason: "hardware watchdog (12s), timing within the policy, membership view v1",
      timeBased: true,
      weak: false,
    });
    expect(fencingGuarantee(contractMeeting(policy, { membershipVersion: 7 }), policy).reason).toMatch(/membership view v7$/);
  });
});
