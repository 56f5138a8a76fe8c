import { OUT_OF_SERVICE_TAINT, type AuditRecord, type Command } from "@fenceline/contracts";
import { REMEDIATION_KINDS } from "@fenceline/statecharts";
import type { FoldResult } from "@fenceline/engine";
import type { FleetView } from "@fenceline/actuators";
import { checkInvariants } from "../invariants.js";
import type { InMemoryCluster } from "../cluster.js";

/**
 * The lab's invariants. Each is checked where it can first be seen: on the cluster's truth after
 * every clock step, on every fold, on every call that moves a workload, on every slot grant, on
 * every self-fence, and at the end of the run.
 */
export type LabInvariant =
  /** A StatefulSet replica identity runs on two machines (the machines' truth, not the API's). */
  | "replica-runs-twice"
  /** A ReadWriteOnce volume is attached to, or used on, two machines. */
  | "volume-on-two-nodes"
  /** A workload was moved (pods/VolumeAttachments deleted, out-of-service taint) before fencing was confirmed. */
  | "remediation-before-fencing"
  /** An event stored in the log has no audit record, or more than one, or its audit changed on a re-fold. */
  | "audit-complete"
  /** More nodes hold a remediation slot than the policy allows, or one was granted without a healthy majority. */
  | "fleet-guard-limit"
  /** A machine that reaches a strict majority of its peers rebooted during a control-plane outage. */
  | "no-reboot-during-outage"
  /** A node is neither healthy nor in the operator state with a reason within the bound after the faults healed. */
  | "converges"
  /** One of the control plane's own messages failed validation. */
  | "valid-messages";

export const LAB_INVARIANTS: readonly LabInvariant[] = [
  "replica-runs-twice",
  "volume-on-two-nodes",
  "remediation-before-fencing",
  "audit-complete",
  "fleet-guard-limit",
  "no-reboot-during-outage",
  "converges",
  "valid-messages",
];

export type LabFailure = { invariant: LabInvariant; node?: string; at: number; detail: string };

const MAX_FAILURES = 50;

/** True for a command that moves a node's workloads away. */
export function movesWorkloads(command: Pick<Command, "kind" | "params">): boolean {
  if (REMEDIATION_KINDS.has(command.kind)) return true;
  return command.kind === "taint.add" && (command.params as { taint: { key: string } }).taint.key === OUT_OF_SERVICE_TAINT.key;
}

/** What `no-reboot-during-outage` knows when an agent stops feeding its watchdog during an outage. */
export type OutageFence = {
  node: string;
  /** Every machine of the fleet, this one included. */
  nodes: readonly string[];
  /** Machines another fault acts on (or just did): the agent cannot count on them. */
  disturbed: ReadonlySet<string>;
  /** Whether the fenced node reaches `peer` now and `peer`'s agent runs. */
  reachesNow: (peer: string) => boolean;
  /**
   * The peers whose agents were serving when the round that decided the fence asked its
   * questions; undefined when the fence did not come from a peer round (the engine asked).
   */
  servingWhenAsked: readonly string[] | undefined;
};

/**
 * The machines a node that fenced itself during an outage could count on: itself, and every
 * peer not hit by another fault that it reaches now and whose agent was already serving when the
 * deciding round asked. The agent decides on the answers to the questions it asked when the round
 * began, not on who is there when the round ends: a machine that was down or still booting then
 * (typically reset by its own watchdog after fencing itself as a minority earlier in the outage)
 * could not answer. When this group is a strict majority the fence was not the design's.
 */
export function outageFenceGroup(f: OutageFence): string[] {
  const asked = f.servingWhenAsked === undefined ? undefined : new Set(f.servingWhenAsked);
  return f.nodes.filter((x) => x === f.node || (!f.disturbed.has(x) && f.reachesNow(x) && (asked === undefined || asked.has(x))));
}

export class LabChecker {
  readonly failures: LabFailure[] = [];
  readonly #seen = new Set<string>();
  #clusterEvents = -1;

  constructor(readonly cluster: InMemoryCluster) {}

  fail(invariant: LabInvariant, at: number, detail: string, node?: string, key = detail): void {
    const id = `${invariant}|${node ?? ""}|${key}`;
    if (this.#seen.has(id) || this.failures.length >= MAX_FAILURES) return;
    this.#seen.add(id);
    this.failures.push({ invariant, ...(node !== undefined ? { node } : {}), at, detail });
  }

  /** After every clock step: what runs where (only when the cluster changed since the last look). */
  step(now: number): void {
    const changed = this.cluster.events().length;
    if (changed === this.#clusterEvents) return;
    this.#clusterEvents = changed;
    const report = checkInvariants(this.cluster, now);
    for (const v of report.violations) {
      const replica = /^(\S+) runs/.exec(v.detail)?.[1] ?? /volume (\S+)/.exec(v.detail)?.[1] ?? v.detail;
      const nodes = [...v.detail.matchAll(/node-\d+/g)].map((m) => m[0]);
      this.fail(v.invariant, now, v.detail, nodes[0], replica);
    }
  }

  /** Every fold: a command that moves workloads needs a fencing confirmation in the same epoch. */
  fold(result: FoldResult): void {
    const { snapshot, audit } = result;
    for (const c of result.commands) {
      if (!movesWorkloads(c)) continue;
      if (snapshot.context.fence.confirmedBy !== null) continue;
      this.fail(
        "remediation-before-fencing",
        audit.at,
        `the engine emitted ${c.kind} (${c.id}, epoch ${c.epoch}) in ${audit.to} with no fencing confirmation for the epoch`,
        c.node,
        `engine:${c.epoch}`,
      );
    }
  }

  /**
   * Every call that moves a node's workloads, as the actuator makes it: the machine must not
   * still run containers behind the API's back (unreachable, or its kubelet dead). Otherwise the
   * StatefulSet starts the replica elsewhere while the old copy runs.
   */
  movingWorkloads(node: string, what: string, now: number): void {
    const view = this.cluster.node(node);
    if (!view) return;
    const responsive = view.power === "on" && !view.crashed && view.kubeletRunning && view.reachable;
    if (responsive) return;
    const running = this.cluster.containers().filter((c) => c.node === node && c.volume !== undefined);
    if (running.length === 0) return;
    this.fail(
      "remediation-before-fencing",
      now,
      `${what} on ${node} while it still runs ${running.map((c) => c.pod).join(", ")} and its kubelet cannot be reached: the node is not fenced`,
      node,
      `truth:${what}`,
    );
  }

  /** Every audit record as published; `earlier` is the record already stored under the same id. */
  audit(record: AuditRecord, earlier: AuditRecord | undefined): void {
    if (earlier && JSON.stringify(earlier) !== JSON.stringify(record)) {
      this.fail(
        "audit-complete",
        record.at,
        `audit ${record.id} was published twice with different contents (a re-fold after a crash must be identical)`,
        record.node,
        `diverged:${record.id}`,
      );
    }
  }

  /** Slots held, after every change: the guard's budget and the engine's view of it. */
  slots(now: number, limit: number, budget: readonly string[], engine: readonly string[]): void {
    if (budget.length > limit) {
      this.fail(
        "fleet-guard-limit",
        now,
        `the fleet budget holds ${budget.length} slots (${budget.join(", ")}), the limit is ${limit}`,
        budget[limit],
        "budget",
      );
    }
    if (engine.length > limit) {
      this.fail(
        "fleet-guard-limit",
        now,
        `${engine.length} nodes hold a slot in the engine's snapshots (${engine.join(", ")}), the limit is ${limit}`,
        engine[limit],
        "engine",
      );
    }
  }

  /**
   * A slot was granted on `view`: its current membership view (or, without one, every node) must
   * have had a healthy strict majority of its votes, the control plane's witness counted.
   */
  granted(node: string, now: number, view: FleetView): void {
    const current = view.views?.at(-1);
    const healthy = current ? current.healthy + current.witness : view.healthy;
    const votes = current ? current.votes : view.fleetSize;
    if (healthy * 2 > votes) return;
    this.fail(
      "fleet-guard-limit",
      now,
      `slot granted to ${node} with only ${healthy} of ${votes} votes healthy (no strict majority)`,
      node,
      "majority",
    );
  }
}
