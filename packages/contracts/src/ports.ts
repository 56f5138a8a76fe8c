/**
 * The small interfaces through which the engine, detectors, actuators and agents touch the
 * world. Production adapters talk to NATS, Kubernetes and /dev/watchdog; the simulator provides
 * in-memory ones and a virtual clock, so the same code runs in both.
 */
import type { Taint } from "./commands.js";
import type { MembershipView } from "./membership.js";

/** Time, as a port: `Date.now()` in production, a virtual clock in the simulator. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * What the cluster actuator needs from a cluster (Kubernetes or the simulator). Every call is
 * idempotent: deleting what is gone and adding a taint that is there both succeed.
 */
export interface ClusterApi {
  addTaint(node: string, taint: Taint): Promise<void>;
  removeTaint(node: string, taint: Taint): Promise<void>;
  /**
   * Force-deletes (grace period 0) the node's pods that must move: all but DaemonSet pods and
   * mirror pods; returns how many.
   */
  deletePods(node: string): Promise<number>;
  /**
   * Force-deletes the node's pods that must move and that the out-of-service taint already
   * evicted (terminating); returns how many.
   */
  deleteEvictedPods(node: string): Promise<number>;
  /**
   * What must still leave the node: pods that must move (not DaemonSet or mirror pods, not
   * tolerating the out-of-service taint, not finished) and the VolumeAttachments on the node
   * other than those of volumes the pods that stay still use.
   */
  countWorkloads(node: string): Promise<{ pods: number; volumeAttachments: number }>;
  /** "1.30" style major.minor of the API server. */
  serverVersion(): Promise<string>;
}

/** The node a fence agent acts on; `deadline` (epoch ms) bounds every attempt and retry. */
export type FenceTarget = { node: string; hostGroup?: string; deadline?: number };
/** What a fence agent printed, credentials redacted, for the audit. */
export type FenceAnswer = { output: string };

/**
 * Power fencing through a BMC, a PDU or a cloud API: one fence device. Failures reject with a
 * typed error (`FenceAgentError` in @fenceline/actuators: unreachable, auth, timeout…).
 */
export interface FenceAgent {
  /** Whether the device is configured for the node. */
  covers(node: string, hostGroup?: string): boolean;
  /**
   * `power: "off"` when the agent itself read the power state back as off after the command
   * (fence_ipmilan polls `chassis power status` until it reads off before it says "Powered
   * OFF"): that read-back is the confirmation, and no second one is needed.
   */
  powerOff(target: FenceTarget): Promise<FenceAnswer & { power?: "off" }>;
  powerOn(target: FenceTarget): Promise<FenceAnswer>;
  /** Reads the power state back: fencing is confirmed only when it says "off". */
  status(target: FenceTarget): Promise<FenceAnswer & { power: "on" | "off" }>;
}

/** Runs cleanup, then provision, for a node and its host group. */
export interface Provisioner {
  run(step: "cleanup" | "provision", node: string, hostGroup: string): Promise<{ ok: boolean; output: string }>;
}

/** A watchdog driver: `/dev/watchdog` in production, a virtual one in the simulator. */
export interface Watchdog {
  /** Arms the watchdog; from now on it resets the node unless fed within `timeoutMs`. */
  start(): Promise<void>;
  feed(): Promise<void>;
  /** Magic close: disarms it on a clean shutdown so stopping the agent does not reset the node. */
  close(): Promise<void>;
  readonly timeoutMs: number;
}

/**
 * The fleet's membership view with compare-and-set (FL_MEMBERS in production, memory in the
 * lab): `write` fails with a Concurrency error when the key is no longer at `revision`.
 */
export interface MembershipStore {
  /** The current view and its revision (view null and revision 0: none written yet). */
  read(): Promise<{ view: MembershipView | null; revision: number }>;
  write(view: MembershipView, revision: number): Promise<number>;
}
