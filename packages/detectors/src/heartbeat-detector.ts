import { createEvent, type Clock, type Heartbeat, type NodeEvent } from "@fenceline/contracts";

type Seen = {
  bootId: string;
  /** -1: not known (seeded from a snapshot after a restart). */
  incarnation: number;
  /** Highest seq of the current incarnation (-1: none yet). */
  seq: number;
  /** Boot ids heard from this node, oldest first (the current one last), at most MAX_BOOTS. */
  boots: readonly string[];
  lastSeenAt: number;
  missing: boolean;
  checksums?: Record<string, string>;
  checksumKey: string;
  /** The contract and peer URL last reported ("" before the first heartbeat that carried one). */
  contractKey: string;
};

const checksumKey = (checksums?: Record<string, string>) =>
  checksums
    ? Object.keys(checksums)
        .sort()
        .map((k) => `${k}=${checksums[k]}`)
        .join(",")
    : "";

/** What identifies a heartbeat's contract and peer URL; "" when it carries neither. */
const contractKey = (hb: Heartbeat) => (hb.contract || hb.peerUrl ? JSON.stringify([hb.contract ?? null, hb.peerUrl ?? null]) : "");

/** How many boot ids per node are remembered to recognise a replayed heartbeat of an ended boot. */
const MAX_BOOTS = 32;

/**
 * Why a heartbeat is stale (a replay, or one delayed past newer ones), or null when it is not.
 * The agent's incarnation grows on every start (across boots) and its seq on every heartbeat of
 * an incarnation, so a heartbeat older than the newest one heard says nothing new about the
 * node: a replayed heartbeat of an earlier boot must not look like a reboot (which confirms
 * fencing), nor a replayed one of the current boot like a node that came back.
 */
function staleness(prev: Seen | undefined, hb: Heartbeat): string | null {
  if (!prev) return null;
  if (prev.incarnation >= 0) {
    if (hb.incarnation < prev.incarnation) {
      return `stale heartbeat: incarnation ${hb.incarnation} is older than the node's current ${prev.incarnation} (boot ${prev.bootId})`;
    }
    if (hb.incarnation === prev.incarnation && hb.seq <= prev.seq) {
      return `stale heartbeat: seq ${hb.seq} of incarnation ${hb.incarnation} is not above the last one heard (${prev.seq})`;
    }
  }
  if (hb.bootId !== prev.bootId && prev.boots.includes(hb.bootId)) {
    return `stale heartbeat: boot ${hb.bootId} has ended (the node has booted ${prev.bootId} since)`;
  }
  return null;
}

const withBoot = (boots: readonly string[], bootId: string) => (boots.includes(bootId) ? boots : [...boots, bootId].slice(-MAX_BOOTS));

/**
 * Turns the heartbeat firehose into the few events that matter: a node seen for the first time
 * (`node.joined`), silent for the timeout (`heartbeat.missed`), back (`heartbeat.resumed`), with a
 * new boot id (`boot.changed`), or with changed checksums (`config.reported`). Ids derive from
 * the heartbeat itself, so two detectors seeing the same heartbeats publish the same ids.
 *
 * A stale heartbeat (an incarnation older than the newest heard, a seq of the current
 * incarnation not above the last, or a boot id that has ended) changes nothing: no event, and
 * `onStale` is told why (the NATS runner dead-letters it and does not ack it). `staleReason`
 * asks the same question without acting.
 */
export function createHeartbeatDetector(options: {
  clock: Clock;
  timeoutMs: number;
  publish: (event: NodeEvent) => Promise<void>;
  source?: string;
  /** Called for every stale heartbeat, which is otherwise ignored. */
  onStale?: (hb: Heartbeat, reason: string) => void;
}) {
  const { clock, timeoutMs, publish } = options;
  const source = options.source ?? "heartbeat-detector";
  const nodes = new Map<string, Seen>();

  const emit = (event: NodeEvent) => publish(event);

  return {
    /** Nodes known from before a restart: treated as seen now, so a silent one is reported after the timeout. */
    seed(known: Array<{ node: string; bootId: string | null }>) {
      const now = clock.now();
      for (const { node, bootId } of known) {
        if (nodes.has(node) || bootId === null) continue;
        nodes.set(node, {
          bootId,
          incarnation: -1,
          seq: -1,
          boots: [bootId],
          lastSeenAt: now,
          missing: false,
          checksumKey: "",
          contractKey: "",
        });
      }
    },

    /**
     * The detector itself was cut off (its NATS connection dropped): silence it could not hear
     * says nothing about the nodes, so every node not already reported missing is treated as
     * seen now and gets a full timeout to be heard again.
     */
    resync() {
      const now = clock.now();
      for (const seen of nodes.values()) if (!seen.missing) seen.lastSeenAt = Math.max(seen.lastSeenAt, now);
    },

    /** Why `hb` would be ignored as stale, or null when it is current. */
    staleReason(hb: Heartbeat): string | null {
      return staleness(nodes.get(hb.node), hb);
    },

    async onHeartbeat(hb: Heartbeat): Promise<void> {
      const now = clock.now();
      const prev = nodes.get(hb.node);
      const stale = staleness(prev, hb);
      if (stale !== null) {
        options.onStale?.(hb, stale);
        return;
      }
      const next: Seen = {
        bootId: hb.bootId,
        incarnation: hb.incarnation,
        seq: hb.seq,
        boots: withBoot(prev?.boots ?? [], hb.bootId),
        lastSeenAt: now,
        missing: false,
        checksumKey: checksumKey(hb.checksums),
        contractKey: contractKey(hb),
        ...(hb.checksums ? { checksums: hb.checksums } : {}),
      };
      nodes.set(hb.node, next);
      // An event that is not stored must not be lost: forget what this heartbeat taught us
      // (keeping that the node was heard), so the next heartbeat reports it again.
      const emit = async (event: NodeEvent) => {
        try {
          await publish(event);
        } catch (err) {
          if (prev) nodes.set(hb.node, { ...prev, lastSeenAt: clock.now() });
          else nodes.delete(hb.node);
          throw err;
        }
      };
      const tag = `${hb.node}:${hb.bootId}:${hb.incarnation}:${hb.seq}`;
      const extra = {
        ...(hb.checksums ? { checksums: hb.checksums } : {}),
        ...(hb.contract ? { contract: hb.contract } : {}),
        ...(hb.peerUrl ? { peerUrl: hb.peerUrl } : {}),
      };
      // A new boot is reported first, whether the node (re)joins or was known.
      if (prev && prev.bootId !== hb.bootId) {
        await emit(
          createEvent("boot.changed", {
            id: `boot:${hb.node}:${hb.bootId}`,
            node: hb.node,
            at: now,
            source,
            data: { previousBootId: prev.bootId, bootId: hb.bootId },
          }),
        );
      }
      if (!prev || prev.incarnation === -1) {
        await emit(
          createEvent("node.joined", {
            id: `joined:${tag}`,
            node: hb.node,
            at: now,
            source,
            data: {
              bootId: hb.bootId,
              incarnation: hb.incarnation,
              ...(hb.hostGroup ? { hostGroup: hb.hostGroup } : {}),
              ...(hb.controlPlane !== undefined ? { controlPlane: hb.controlPlane } : {}),
              ...extra,
            },
          }),
        );
        return;
      }
      if (prev.missing) {
        await emit(
          createEvent("heartbeat.resumed", {
            id: `resumed:${tag}`,
            node: hb.node,
            at: now,
            source,
            data: { bootId: hb.bootId, incarnation: hb.incarnation, ...extra, ...(hb.selfFenced ? { selfFenced: hb.selfFenced } : {}) },
          }),
        );
        return;
      }
      if (hb.checksums && prev.checksumKey !== next.checksumKey) {
        await emit(
          createEvent("config.reported", {
            id: `config:${tag}`,
            node: hb.node,
            at: now,
            source,
            data: { bootId: hb.bootId, checksums: hb.checksums },
          }),
        );
      }
      if (hb.contract && prev.contractKey !== next.contractKey) {
        await emit(
          createEvent("contract.reported", {
            id: `contract:${tag}`,
            node: hb.node,
            at: now,
            source,
            data: { bootId: hb.bootId, contract: hb.contract, ...(hb.peerUrl ? { peerUrl: hb.peerUrl } : {}) },
          }),
        );
      }
    },

    /**
     * The node was forgotten (it left the fleet): the next heartbeat of its agent, if any, is a
     * first one again and brings it back with `node.joined`.
     */
    forget(node: string) {
      nodes.delete(node);
    },

    /** Reports nodes silent for the timeout; call it a few times per timeout. */
    async tick(): Promise<void> {
      const now = clock.now();
      for (const [node, seen] of nodes) {
        if (seen.missing || now - seen.lastSeenAt < timeoutMs) continue;
        // Marked before publishing so a heartbeat arriving meanwhile is reported as resumed.
        seen.missing = true;
        try {
          await emit(
            createEvent("heartbeat.missed", {
              id: `missed:${node}:${seen.bootId}:${seen.incarnation}:${seen.seq}`,
              node,
              at: now,
              source,
              data: { lastSeenAt: seen.lastSeenAt, bootId: seen.bootId },
            }),
          );
        } catch (err) {
          if (nodes.get(node) === seen) seen.missing = false;
          throw err;
        }
      }
    },

    known(): string[] {
      return [...nodes.keys()].sort();
    },
    isMissing(node: string): boolean {
      return nodes.get(node)?.missing ?? false;
    },
  };
}
export type HeartbeatDetector = ReturnType<typeof createHeartbeatDetector>;
