import {
  NodeName,
  withdrawnContract,
  type AgentContract,
  type AgentTiming,
  type Clock,
  type Heartbeat,
  type HeartbeatAck,
  type MembershipView,
  type Watchdog,
  type WatchdogKind,
} from "@fenceline/contracts";
import type { Logger } from "pino";
import { verdictOfState, type PeerAnswer, type PeerQuestion } from "./peer-protocol.js";
import type {
  AgentTransport,
  CommandReply,
  MembershipViewStore,
  PeerAddress,
  PeerTransport,
  SelfFenceRecord,
  SelfFenceStore,
  WatchdogStopCommand,
} from "./ports.js";
import type { ContactStore } from "./contact-store.js";
import { decideSelfFence, type PeerReport, type SelfFenceDecision } from "./self-fence-decision.js";

export interface AgentOptions {
  node: string;
  bootId: string;
  incarnation: number;
  hostGroup?: string;
  controlPlane?: boolean;
  timing: AgentTiming;
  heartbeatIntervalMs: number;
  /**
   * Keeps the membership view learned from the control plane (the fleet: whom to ask, what a
   * majority is). Default: in memory only (tests).
   */
  membership?: MembershipViewStore;
  /**
   * An optional address book: the URL to use for a member instead of the one it advertised. It
   * never adds a member or changes the fleet's size.
   */
  addressBook?: ReadonlyArray<{ node: string; url: string }>;
  /** The URL this agent's peers reach it at, sent in every heartbeat. */
  peerUrl?: string;
  transport: AgentTransport;
  peers: PeerTransport;
  watchdog: Watchdog;
  /** What resets the node when `watchdog` is not fed: reported in the contract. */
  watchdogKind: WatchdogKind;
  /** How long a clean stop waits for the control plane to confirm the withdrawal. Default 2s. */
  withdrawTimeoutMs?: number;
  clock: Clock;
  /** Configuration checksums per service, reported in heartbeats. */
  checksums?: () => Promise<Record<string, string>>;
  /** How often checksums are recomputed. Default 60s. */
  checksumIntervalMs?: number;
  selfFenceStore?: SelfFenceStore;
  /** Keeps the last control-plane contact across agent restarts within a boot. */
  contactStore?: ContactStore;
  log: Logger;
  /** Called once, when this boot stops feeding its watchdog. */
  onSelfFence?: (record: SelfFenceRecord) => void;
  /**
   * This agent tells its peers it reaches the control plane only if its last ack is at most this
   * old. It must stay well below controlPlaneTimeoutMs: when the control plane goes down for
   * everyone, a peer whose last ack came a heartbeat later than the asker's must already say
   * "lost", or an outage would look like a partition. Default: min(2 heartbeats, half the timeout).
   */
  controlPlaneFreshMs?: number;
  /** How long answering a peer may wait for `transport.lookupNodeState`. Default: half a peer round. */
  lookupTimeoutMs?: number;
}

export interface AgentState {
  node: string;
  bootId: string;
  incarnation: number;
  running: boolean;
  /** Sequence number of the last heartbeat sent (-1: none yet). */
  seq: number;
  /** Last ack, or the start time before the first one. */
  lastControlPlaneContact: number;
  controlPlaneLostForMs: number;
  /** The engine's state of this node, from the last ack. */
  lastAckState: string | undefined;
  feeding: boolean;
  lastFedAt: number | undefined;
  highestEpoch: number | undefined;
  selfFenced: SelfFenceRecord | undefined;
  /** A previous boot's self-fence, reported in heartbeats until the control plane acks one. */
  previousSelfFence: SelfFenceRecord | undefined;
  lastDecision: (SelfFenceDecision & { at: number }) | undefined;
  peerRounds: number;
  checksums: Record<string, string> | undefined;
  /** The membership view it holds (null: none learned yet). */
  membership: MembershipView | null;
  /** What its heartbeats promise (the contract). */
  contract: AgentContract;
}

export interface Agent {
  start(): Promise<void>;
  /**
   * Clean stop (default): withdraws the contract (the control plane must confirm it), then
   * disarms the watchdog with the magic close; never when this boot is fenced, and not without
   * the confirmation (the watchdog then resets the node). `{ clean: false }` is a kill (the
   * simulator's crashed agent): nothing is sent and nothing disarmed.
   */
  stop(how?: { clean: boolean }): Promise<void>;
  state(): AgentState;
}

type TimerName = "heartbeat" | "feed" | "control-plane" | "checksums";

export function createAgent(options: AgentOptions): Agent {
  const { node, bootId, incarnation, timing, heartbeatIntervalMs, transport, peers, watchdog, clock } = options;
  const parsedNode = NodeName.safeParse(node);
  if (!parsedNode.success) throw new Error(`invalid node name "${node}": ${parsedNode.error.issues[0]?.message}`);
  const addressBook = new Map((options.addressBook ?? []).map((entry) => [entry.node, entry.url]));
  const withdrawTimeoutMs = options.withdrawTimeoutMs ?? 2_000;
  if (bootId.length === 0 || bootId.length > 128) throw new Error(`bootId must be 1 to 128 characters, got ${bootId.length}`);
  if (!(heartbeatIntervalMs > 0)) throw new Error(`heartbeatIntervalMs must be positive, got ${heartbeatIntervalMs}`);
  if (watchdog.timeoutMs > timing.watchdogTimeoutMs) {
    throw new Error(
      `the watchdog timeout ${watchdog.timeoutMs}ms is longer than timing.watchdogTimeoutMs ${timing.watchdogTimeoutMs}ms, which the safe time is computed from`,
    );
  }
  const log = options.log.child({ node, bootId, incarnation });
  if (timing.controlPlaneTimeoutMs <= 3 * heartbeatIntervalMs) {
    log.warn(
      { controlPlaneTimeoutMs: timing.controlPlaneTimeoutMs, heartbeatIntervalMs },
      "control-plane timeout is at most 3 heartbeats: an outage may be mistaken for a partition",
    );
  }
  const freshMs = options.controlPlaneFreshMs ?? Math.min(2 * heartbeatIntervalMs, Math.floor(timing.controlPlaneTimeoutMs / 2));
  const lookupTimeoutMs = options.lookupTimeoutMs ?? Math.floor(timing.peerRoundMs / 2);
  const feedPeriodMs = Math.max(1, Math.floor(watchdog.timeoutMs / 3));
  const checksumIntervalMs = options.checksumIntervalMs ?? 60_000;

  let running = false;
  let seq = -1;
  let lastContact = 0;
  let lastAckAt: number | undefined;
  let lastAckState: string | undefined;
  let feeding = true;
  let lastFedAt: number | undefined;
  let highestEpoch: number | undefined;
  let selfFenced: SelfFenceRecord | undefined;
  let previousSelfFence: SelfFenceRecord | undefined;
  let lastDecision: AgentState["lastDecision"];
  let peerRounds = 0;
  let roundsSinceContact = 0;
  let checksums: Record<string, string> | undefined;
  let view: MembershipView | null = null;
  /** Views being stored, one after the other; a view is used only once it is stored. */
  let storing: Promise<void> = Promise.resolve();
  const timers = new Map<TimerName, unknown>();

  const contract = (): AgentContract => ({
    timing: {
      controlPlaneTimeoutMs: timing.controlPlaneTimeoutMs,
      peerRoundMs: timing.peerRoundMs,
      watchdogTimeoutMs: timing.watchdogTimeoutMs,
      marginMs: timing.marginMs,
    },
    heartbeatIntervalMs,
    watchdog: { kind: options.watchdogKind, timeoutMs: watchdog.timeoutMs },
    membershipVersion: view?.version ?? 0,
  });

  /** The other members of the view and where to reach them (without a view: the address book). */
  const peersToAsk = (): PeerAddress[] => {
    if (!view) return [...addressBook].filter(([peer]) => peer !== node).map(([peer, url]) => ({ node: peer, url }));
    return view.members
      .filter((m) => m.node !== node)
      .map((m) => {
        const url = addressBook.get(m.node) ?? m.peerUrl;
        return url === undefined ? { node: m.node } : { node: m.node, url };
      });
  };

  /** Stores a newer view durably, then uses it (and reports it); an older or equal one is ignored. */
  const learn = (next: MembershipView) => {
    storing = storing.then(async () => {
      if (view && next.version <= view.version) return;
      try {
        await options.membership?.save(next);
      } catch (err) {
        log.error({ err, version: next.version }, "cannot store the membership view: keeping the previous one");
        return;
      }
      const previous = view;
      view = next;
      log.info(
        { version: next.version, members: next.members.length, previous: previous?.version ?? 0 },
        `membership view v${next.version}: ${next.members.length} members`,
      );
    });
  };

  const schedule = (name: TimerName, ms: number, fn: () => void) => {
    cancel(name);
    timers.set(
      name,
      clock.setTimeout(
        () => {
          timers.delete(name);
          if (running) fn();
        },
        Math.max(0, ms),
      ),
    );
  };
  const cancel = (name: TimerName) => {
    const handle = timers.get(name);
    if (handle !== undefined) clock.clearTimeout(handle);
    timers.delete(name);
  };

  const sendHeartbeat = () => {
    seq++;
    const heartbeat: Heartbeat = { v: 1, node, bootId, incarnation, seq, sentAt: Math.floor(clock.now()), contract: contract() };
    if (options.peerUrl !== undefined) heartbeat.peerUrl = options.peerUrl;
    if (options.hostGroup !== undefined) heartbeat.hostGroup = options.hostGroup;
    if (options.controlPlane !== undefined) heartbeat.controlPlane = options.controlPlane;
    if (checksums) heartbeat.checksums = checksums;
    const fence = selfFenced ?? previousSelfFence;
    if (fence) heartbeat.selfFenced = fence;
    try {
      transport.sendHeartbeat(heartbeat);
    } catch (err) {
      log.debug({ err, seq }, "heartbeat not sent");
    }
  };
  const heartbeatTick = () => {
    sendHeartbeat();
    schedule("heartbeat", heartbeatIntervalMs, heartbeatTick);
  };

  // Fixed rate: the next feed is due one period after the previous one was due, not after it
  // finished, so a slow write cannot stretch the period.
  /**
   * Restarted within this boot after the control plane had already been lost for the timeout:
   * the device is not opened (opening feeds it) until a peer round says to keep feeding.
   */
  let awaitingVerdict = false;
  let watchdogOpen = false;
  const openWatchdog = async () => {
    if (watchdogOpen) return;
    watchdogOpen = true;
    await watchdog.start();
  };

  const resumeFeeding = (why: string) => {
    awaitingVerdict = false;
    log.info({ why }, "feeding the watchdog again");
    void openWatchdog().then(feedTick, (err: unknown) => log.error({ err }, "cannot open the watchdog"));
  };

  const feedTick = () => {
    if (!feeding || awaitingVerdict) return;
    schedule("feed", feedPeriodMs, feedTick);
    watchdog.feed().then(
      () => (lastFedAt = clock.now()),
      (err: unknown) => log.error({ err }, "watchdog feed failed"),
    );
  };

  const onAck = (ack: HeartbeatAck) => {
    if (!running) return;
    if (ack.node !== node) return log.warn({ ackNode: ack.node }, "ignoring an ack for another node");
    lastContact = lastAckAt = clock.now();
    lastAckState = ack.state;
    if (ack.membership?.view) learn(ack.membership.view);
    if (awaitingVerdict) resumeFeeding("the control plane answered");
    options.contactStore
      ?.save({ bootId, at: lastContact })
      .catch((err: unknown) => log.warn({ err }, "cannot record the last control-plane contact"));
    if (roundsSinceContact > 0) log.info({ peerRounds: roundsSinceContact }, "control plane back");
    roundsSinceContact = 0;
    if (previousSelfFence) {
      log.info({ previousSelfFence }, "the control plane received the previous boot's self-fence report");
      previousSelfFence = undefined;
      options.selfFenceStore?.clear().catch((err: unknown) => log.warn({ err }, "cannot clear the self-fence record"));
    }
  };

  const fence = async (reason: string) => {
    if (selfFenced) return;
    feeding = false;
    cancel("feed");
    cancel("control-plane");
    selfFenced = { at: Math.floor(clock.now()), reason: reason.slice(0, 256), bootId };
    log.error({ selfFenced, watchdogTimeoutMs: watchdog.timeoutMs }, "stopped feeding the watchdog: this node will be reset");
    try {
      options.onSelfFence?.(selfFenced);
    } catch (err) {
      log.error({ err }, "onSelfFence callback failed");
    }
    await options.selfFenceStore?.save(selfFenced).catch((err: unknown) => log.error({ err }, "cannot persist the self-fence record"));
  };

  const checkControlPlane = () => {
    if (selfFenced) return;
    const lostFor = clock.now() - lastContact;
    if (lostFor < timing.controlPlaneTimeoutMs) {
      schedule("control-plane", timing.controlPlaneTimeoutMs - lostFor, checkControlPlane);
      return;
    }
    void runPeerRound();
  };

  let askedThisRound: PeerAddress[] = [];
  const askPeers = async (): Promise<PeerReport[]> => {
    const question: PeerQuestion = { from: node, about: node };
    const reports: PeerReport[] = [];
    const asks = askedThisRound.map(async (peer) => {
      const answer = await peers.ask(peer, question, timing.peerRoundMs).catch(() => undefined);
      if (!answer) return;
      if (answer.node !== peer.node)
        return log.warn({ peer: peer.node, answeredBy: answer.node }, "ignoring a peer answer from the wrong node");
      reports.push({ peer: peer.node, controlPlane: answer.controlPlane, ...(answer.verdict ? { verdict: answer.verdict } : {}) });
    });
    // The round ends at its deadline even if a transport ignores its own timeout.
    let deadline: unknown;
    await Promise.race([Promise.all(asks), new Promise<void>((resolve) => (deadline = clock.setTimeout(resolve, timing.peerRoundMs)))]);
    clock.clearTimeout(deadline);
    return [...reports];
  };

  const runPeerRound = async () => {
    const roundStart = clock.now();
    peerRounds++;
    roundsSinceContact++;
    const lostForMs = roundStart - lastContact;
    // The round asks, and is judged against, the view held when it begins.
    const roundView = view;
    askedThisRound = peersToAsk();
    if (roundsSinceContact === 1)
      log.warn({ lostForMs, peers: askedThisRound.length, membership: roundView?.version ?? 0 }, "control plane lost: asking peers");
    else log.debug({ lostForMs, round: roundsSinceContact }, "control plane still lost: asking peers again");
    const peersAsked = askedThisRound.length;
    const peerAnswers = await askPeers();
    if (!running || selfFenced) return;
    const now = clock.now();
    const decision = decideSelfFence({
      node,
      view: roundView,
      controlPlaneLostForMs: now - lastContact,
      controlPlaneTimeoutMs: timing.controlPlaneTimeoutMs,
      peerAnswers,
      peersAsked,
    });
    if (roundsSinceContact === 1 || decision.reason !== lastDecision?.reason)
      log.warn({ decision, peerAnswers }, `self-fence decision: ${decision.action} (${decision.reason})`);
    // Only a verdict from this same loss of the control plane counts as the previous one.
    const previous = roundsSinceContact > 1 ? lastDecision : undefined;
    lastDecision = { ...decision, at: now };
    if (decision.action === "stop-feeding" && previous?.reason === "control-plane-outage" && decision.reason !== "marked-unhealthy") {
      // The outage may just be ending: peers that reconnected a moment ago look like "they reach
      // the control plane and I don't" until this node's own next ack arrives. Confirm with one
      // more round (the engine's safe time after a majority returns allows two peer rounds); the
      // next round's previous verdict is this stop-feeding one, so it decides for real.
      log.warn({ decision }, "stop-feeding right after an outage verdict: confirming with one more peer round");
      schedule("control-plane", Math.max(0, roundStart + timing.peerRoundMs - now), checkControlPlane);
      return;
    }
    if (decision.action === "stop-feeding") return fence(`${decision.reason}: ${decision.detail}`);
    if (awaitingVerdict) resumeFeeding(`peers: ${decision.reason}`);
    // While still lost, rounds repeat one peer round apart.
    schedule("control-plane", roundStart + timing.peerRoundMs - now, checkControlPlane);
  };

  const onCommand = async (command: WatchdogStopCommand): Promise<CommandReply> => {
    const clog = log.child({ commandId: command.id, epoch: command.epoch });
    const refuse = (reason: string): CommandReply => {
      clog.warn({ reason }, "refused watchdog.stop");
      return { ok: false, reason };
    };
    if (!running) return refuse("agent is not running");
    if (command.node !== node) return refuse(`command is for node ${command.node}, this is ${node}`);
    if (highestEpoch !== undefined && command.epoch < highestEpoch) return refuse(`stale epoch ${command.epoch} < ${highestEpoch}`);
    if (command.params.bootId !== undefined && command.params.bootId !== bootId) {
      return refuse(`meant for boot ${command.params.bootId}; this is boot ${bootId}: the node has rebooted since`);
    }
    const now = clock.now();
    if (now > command.deadline) return refuse(`deadline ${command.deadline} passed (now ${Math.floor(now)})`);
    highestEpoch = Math.max(highestEpoch ?? command.epoch, command.epoch);
    clog.warn({ reason: command.params.reason }, "engine asked to stop feeding the watchdog");
    await fence(`engine request ${command.id} (epoch ${command.epoch}): ${command.params.reason}`);
    return { ok: true };
  };

  const answerPeer = async (question: PeerQuestion): Promise<PeerAnswer> => {
    const fresh = lastAckAt !== undefined && clock.now() - lastAckAt <= freshMs;
    const answer: PeerAnswer = { node, controlPlane: fresh ? "reachable" : "lost", verdict: "unknown" };
    if (transport.lookupNodeState) {
      try {
        const state = await withDeadline(transport.lookupNodeState(question.about, lookupTimeoutMs), lookupTimeoutMs, clock);
        answer.controlPlane = "reachable";
        answer.verdict = verdictOfState(state);
      } catch (err) {
        // Asking the control plane just failed: whatever our last ack says, we do not reach it now.
        answer.controlPlane = "lost";
        log.debug({ err, about: question.about }, "node state lookup failed");
      }
    }
    log.debug({ question, answer }, "answered a peer");
    return answer;
  };

  const refreshChecksums = async () => {
    if (!options.checksums) return;
    try {
      checksums = await options.checksums();
    } catch (err) {
      log.warn({ err }, "cannot compute configuration checksums");
    }
  };
  const checksumTick = () => {
    void refreshChecksums().finally(() => {
      if (running) schedule("checksums", checksumIntervalMs, checksumTick);
    });
  };

  return {
    start: async () => {
      if (running) throw new Error("agent already started");
      const stored = await options.selfFenceStore?.load().catch((err: unknown) => {
        log.warn({ err }, "cannot read the self-fence record");
        return undefined;
      });
      if (stored?.bootId === bootId) {
        // Fencing is one-way for a boot: an agent restarted in a fenced boot stays fenced.
        selfFenced = stored;
        feeding = false;
        log.error({ selfFenced }, "this boot already stopped feeding its watchdog: not feeding");
      } else if (stored) {
        previousSelfFence = stored;
        log.warn({ previousSelfFence }, "the previous boot fenced itself; reporting it");
      }
      // An unreadable view is fatal (it throws): a view this node reported must not become none.
      const kept = await options.membership?.load();
      if (kept) {
        view = kept;
        log.info({ version: kept.version, members: kept.members.length }, "membership view loaded");
      } else log.warn("no membership view yet: it comes with the first ack of the control plane");
      await refreshChecksums();
      running = true;
      lastContact = clock.now();
      const contact = await options.contactStore?.load().catch(() => undefined);
      if (contact?.bootId === bootId && contact.at < lastContact) {
        // Restarted within this boot: the control plane was last heard then, not now.
        lastContact = contact.at;
        log.warn({ lastContact }, "restarted within the same boot: counting the lost control plane from the previous agent's last contact");
        if (!selfFenced && clock.now() - lastContact >= timing.controlPlaneTimeoutMs) {
          awaitingVerdict = true;
          log.warn("the control plane was already lost for the timeout: not feeding the watchdog until the peers say so");
        }
      }
      if (feeding && !awaitingVerdict) await openWatchdog();
      transport.onAck(onAck);
      transport.onCommand(onCommand);
      peers.serve(answerPeer);
      if (feeding) feedTick();
      heartbeatTick();
      if (!selfFenced) schedule("control-plane", Math.max(0, lastContact + timing.controlPlaneTimeoutMs - clock.now()), checkControlPlane);
      if (options.checksums) schedule("checksums", checksumIntervalMs, checksumTick);
      log.info(
        { membership: view?.version ?? 0, contract: contract(), peerUrl: options.peerUrl, heartbeatIntervalMs, feedPeriodMs },
        "agent started",
      );
    },

    stop: async (how = { clean: true }) => {
      if (!running) return;
      running = false;
      for (const name of [...timers.keys()]) cancel(name);
      if (!how.clean) {
        log.warn("agent killed: no withdrawal, no magic close");
      } else if (selfFenced) {
        log.warn({ selfFenced }, "stopping while fenced: the watchdog stays armed and will reset this node");
      } else if (awaitingVerdict) {
        log.warn("stopping before the peers answered: the watchdog was not reopened and will reset this node");
      } else if (watchdogOpen) {
        // The engine may assume this node fenced by time only while the contract holds; it must
        // hear that it no longer does before the watchdog is disarmed.
        seq++;
        const last: Heartbeat = {
          v: 1,
          node,
          bootId,
          incarnation,
          seq,
          sentAt: Math.floor(clock.now()),
          contract: withdrawnContract(contract()),
          stopping: true,
        };
        if (options.peerUrl !== undefined) last.peerUrl = options.peerUrl;
        const withdrawn = (await transport.withdraw?.(last, withdrawTimeoutMs).catch(() => false)) ?? false;
        if (withdrawn)
          await watchdog.close().catch((err: unknown) => log.error({ err }, "watchdog magic close failed: the node may be reset"));
        else
          log.error(
            { withdrawTimeoutMs },
            "the control plane did not confirm the withdrawal of the contract: the watchdog stays armed and will reset this node",
          );
      }
      await Promise.allSettled([transport.close(), peers.close()]);
      log.info("agent stopped");
    },

    state: () => {
      const now = clock.now();
      return {
        node,
        bootId,
        incarnation,
        running,
        seq,
        lastControlPlaneContact: lastContact,
        controlPlaneLostForMs: now - lastContact,
        lastAckState,
        feeding,
        lastFedAt,
        highestEpoch,
        selfFenced,
        previousSelfFence,
        lastDecision,
        peerRounds,
        checksums,
        membership: view,
        contract: contract(),
      };
    },
  };
}

function withDeadline<T>(promise: Promise<T>, ms: number, clock: Clock): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimeout(() => reject(new Error(`no answer within ${ms}ms`)), ms);
    promise.then(
      (value) => {
        clock.clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clock.clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
