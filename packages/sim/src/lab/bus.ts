import { ErrorCode, FencelineError, type Clock } from "@fenceline/contracts";
import type { ConsumedMessage } from "@fenceline/bus";
import type { EventMessage, EventSubscription, PartitionConsumer } from "@fenceline/engine";
import type { Prng } from "./prng.js";

/**
 * An in-memory model of the parts of NATS JetStream the control plane relies on, on the virtual
 * clock: streams with subjects, sequences and `Nats-Msg-Id` deduplication within a window,
 * durable consumers with explicit acks or ack policy "all", naks with a delay, redelivery after
 * the ack wait, the ack floor, the delivery (consumer) sequence, a consumer deleted and created
 * again from its ack floor (the engine's rewind), and `working()`. Like a pull consumer, a
 * subscription takes a batch at a time: every message of the batch counts as delivered (its ack
 * wait runs) until it is acked, so a process that dies leaves the whole batch to be redelivered
 * after the ack wait, while later messages keep coming.
 *
 * Faults it models: the server being unreachable (publishes throw, nothing is delivered, acks and
 * naks are lost), lost acks (the message comes again: a duplicate delivery), and deliveries that
 * are lost in transit (the message comes again later, out of order; its delivery sequence is
 * used up, as when a connection drops with messages on the wire).
 */

export type StoredMessage<T> = {
  readonly seq: number;
  readonly id: string;
  /** The node the message is about (for the lab's checks and trail). */
  readonly key: string;
  readonly subject: string;
  readonly data: T;
  readonly at: number;
};
export type Delivery<T> = { readonly msg: StoredMessage<T>; readonly deliveryCount: number; readonly deliverySeq: number };
export type PublishAck = { seq: number; duplicate: boolean };

/** Message-level chaos while a "message-chaos" fault is active. */
export type BusChaos = {
  /** Probability that an ack is lost (the message is delivered again after the ack wait). */
  lostAck: number;
  /** Probability that a delivery is lost in transit (redelivered after a random delay up to the ack wait). */
  lostDelivery: number;
};

export class BusUnavailableError extends FencelineError {
  constructor(what: string) {
    super(ErrorCode.NatsUnavailable, `simulated NATS unavailable: ${what}`);
  }
}

/** Removes a listener added with one of the `on…` methods. */
export type Unlisten = () => void;

function listen(listeners: Set<() => void>, listener: () => void): Unlisten {
  listeners.add(listener);
  return () => void listeners.delete(listener);
}

export class SimStream<T> {
  readonly messages: StoredMessage<T>[] = [];
  readonly #byKey = new Map<string, number[]>();
  readonly #dedup = new Map<string, { seq: number; at: number }>();
  readonly #payloads = new Map<number, Uint8Array>();
  readonly #listeners = new Set<() => void>();

  constructor(
    readonly name: string,
    readonly bus: SimBus,
    readonly duplicateWindowMs: number,
  ) {}

  publish(id: string, key: string, data: T, subject: string = key): PublishAck {
    if (!this.bus.available) throw new BusUnavailableError(`cannot publish ${id} to ${this.name}`);
    const now = this.bus.clock.now();
    const seen = this.#dedup.get(id);
    if (seen && now - seen.at < this.duplicateWindowMs) return { seq: seen.seq, duplicate: true };
    const seq = this.messages.length + 1;
    this.messages.push({ seq, id, key, subject, data, at: now });
    this.#dedup.set(id, { seq, at: now });
    let keyed = this.#byKey.get(key);
    if (!keyed) this.#byKey.set(key, (keyed = []));
    keyed.push(seq);
    for (const listener of this.#listeners) listener();
    return { seq, duplicate: false };
  }

  get(seq: number): StoredMessage<T> | undefined {
    return this.messages[seq - 1];
  }

  /** A message's payload as a consumer receives it: the JSON its publisher sent, as bytes. */
  payload(seq: number): Uint8Array {
    let bytes = this.#payloads.get(seq);
    if (!bytes) {
      const msg = this.get(seq)!;
      bytes = Buffer.from(JSON.stringify(msg.data));
      this.#payloads.set(seq, bytes);
    }
    return bytes;
  }

  get lastSeq(): number {
    return this.messages.length;
  }

  /** Sequences of `key`'s messages in (after, before), oldest first. */
  seqsOf(key: string, after: number, before: number): number[] {
    const all = this.#byKey.get(key) ?? [];
    let lo = 0;
    let hi = all.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (all[mid]! <= after) lo = mid + 1;
      else hi = mid;
    }
    const out: number[] = [];
    for (let i = lo; i < all.length && all[i]! < before; i++) out.push(all[i]!);
    return out;
  }

  onPublish(listener: () => void): Unlisten {
    return listen(this.#listeners, listener);
  }
}

type MsgState = { deliveredAt: number | null; availableAt: number; deliveries: number };

export type AckPolicy = "explicit" | "all";

export class SimConsumer<T> {
  /** Unacknowledged messages of this consumer, by sequence, oldest first. */
  readonly #unacked = new Map<number, MsgState>();
  #scanned = 0;
  /** The delivery (consumer) sequence of the last delivery. */
  #delivered = 0;
  readonly #listeners = new Set<() => void>();

  constructor(
    readonly name: string,
    readonly stream: SimStream<T>,
    readonly filter: (msg: StoredMessage<T>) => boolean,
    readonly ackWaitMs: number,
    /** "all": acking a message acknowledges every one before it (the engine's consumers). */
    readonly ackPolicy: AckPolicy = "explicit",
  ) {
    stream.onPublish(() => {
      for (const l of this.#listeners) l();
    });
  }

  #sync(): void {
    const { messages } = this.stream;
    const now = this.stream.bus.clock.now();
    while (this.#scanned < messages.length) {
      const msg = messages[this.#scanned++]!;
      if (this.filter(msg)) this.#unacked.set(msg.seq, { deliveredAt: null, availableAt: now, deliveries: 0 });
    }
  }

  /** Takes up to `max` messages that may be delivered now, oldest first. */
  pull(max: number): Delivery<T>[] {
    const bus = this.stream.bus;
    if (!bus.available) return [];
    this.#sync();
    const now = bus.clock.now();
    const out: Delivery<T>[] = [];
    for (const [seq, st] of this.#unacked) {
      if (st.deliveredAt !== null && now - st.deliveredAt < this.ackWaitMs) continue;
      if (st.availableAt > now) continue;
      st.deliveredAt = now;
      st.deliveries += 1;
      const deliverySeq = ++this.#delivered;
      const chaos = bus.chaos;
      if (chaos && bus.rng.chance(chaos.lostDelivery)) {
        // Lost on its way to the client: the server redelivers it after its ack wait.
        st.availableAt = now + bus.rng.int(1, this.ackWaitMs);
        st.deliveredAt = null;
        bus.stats.lostDeliveries += 1;
        continue;
      }
      out.push({ msg: this.stream.get(seq)!, deliveryCount: st.deliveries, deliverySeq });
      if (out.length >= max) break;
    }
    return out;
  }

  /** Acknowledges `seq` (ack policy "all": and every message before it). */
  ack(seq: number): void {
    const bus = this.stream.bus;
    if (!bus.available) return;
    if (!this.#unacked.has(seq)) return;
    if (bus.chaos && bus.rng.chance(bus.chaos.lostAck)) {
      bus.stats.lostAcks += 1;
      return;
    }
    if (this.ackPolicy === "explicit") {
      this.#unacked.delete(seq);
      return;
    }
    for (const s of this.#unacked.keys()) {
      if (s > seq) break;
      this.#unacked.delete(s);
    }
  }

  /** Never redelivers `seq` (JetStream's `term()`). */
  term(seq: number): void {
    if (!this.stream.bus.available) return;
    this.#unacked.delete(seq);
  }

  nak(seq: number, delayMs: number): void {
    const bus = this.stream.bus;
    if (!bus.available) return;
    const st = this.#unacked.get(seq);
    if (!st) return;
    st.deliveredAt = null;
    st.availableAt = bus.clock.now() + Math.max(0, delayMs);
  }

  /** Restarts the ack wait of a message being worked on (JetStream's `working()`). */
  working(seq: number): void {
    const bus = this.stream.bus;
    if (!bus.available) return;
    const st = this.#unacked.get(seq);
    if (st && st.deliveredAt !== null) st.deliveredAt = bus.clock.now();
  }

  /**
   * The consumer deleted and created again from its ack floor + 1, with the same settings: every
   * unacknowledged message may be delivered at once, in order, as a first delivery, and the
   * delivery sequence starts again.
   */
  recreate(): void {
    if (!this.stream.bus.available) throw new BusUnavailableError(`cannot recreate consumer ${this.name}`);
    this.#sync();
    const now = this.stream.bus.clock.now();
    for (const st of this.#unacked.values()) {
      st.deliveredAt = null;
      st.availableAt = now;
      st.deliveries = 0;
    }
    this.#delivered = 0;
  }

  /** JetStream's consumer info: messages delivered and not yet acknowledged, and the last delivery sequence. */
  info(): { ackPending: number; delivered: number } {
    if (!this.stream.bus.available) throw new BusUnavailableError(`no info for consumer ${this.name}`);
    this.#sync();
    let ackPending = 0;
    for (const st of this.#unacked.values()) if (st.deliveries > 0) ackPending += 1;
    return { ackPending, delivered: this.#delivered };
  }

  /** Every message at or below it is acknowledged (JetStream's ack floor). */
  ackFloor(): number {
    this.#sync();
    for (const seq of this.#unacked.keys()) return seq - 1;
    return this.stream.lastSeq;
  }

  isAcked(seq: number): boolean {
    this.#sync();
    return seq <= this.stream.lastSeq && !this.#unacked.has(seq) && this.filter(this.stream.get(seq)!);
  }

  /** How many messages of this consumer are not acknowledged yet. */
  get pending(): number {
    this.#sync();
    return this.#unacked.size;
  }

  /** When a message that cannot be delivered now becomes deliverable (null: none waiting). */
  nextWakeAt(): number | null {
    this.#sync();
    const now = this.stream.bus.clock.now();
    let at: number | null = null;
    for (const st of this.#unacked.values()) {
      const t = st.deliveredAt !== null ? st.deliveredAt + this.ackWaitMs : st.availableAt;
      if (t > now && (at === null || t < at)) at = t;
    }
    return at;
  }

  onMessage(listener: () => void): Unlisten {
    return listen(this.#listeners, listener);
  }
}

export class SimBus {
  available = true;
  chaos: BusChaos | null = null;
  readonly stats = { lostAcks: 0, lostDeliveries: 0 };
  readonly #availabilityListeners = new Set<() => void>();

  constructor(
    readonly clock: Clock,
    readonly rng: Prng,
  ) {}

  setAvailable(available: boolean): void {
    if (this.available === available) return;
    this.available = available;
    for (const l of this.#availabilityListeners) l();
  }

  onAvailabilityChange(listener: () => void): Unlisten {
    return listen(this.#availabilityListeners, listener);
  }
}

/**
 * What a client's subscription does between the consumer and its reader: it is woken when a
 * message is published, when the server comes back, and when a redelivery is due (a timer on
 * the virtual clock), and then runs `flush` (in a microtask, never inside a publish).
 */
class Pump<T> {
  #alive = true;
  #queued = false;
  #wake: unknown = null;
  readonly #unlisten: Unlisten[];

  constructor(
    readonly consumer: SimConsumer<T>,
    readonly flush: () => void,
  ) {
    this.#unlisten = [consumer.onMessage(() => this.kick()), consumer.stream.bus.onAvailabilityChange(() => this.kick())];
  }

  get alive(): boolean {
    return this.#alive;
  }

  kick(): void {
    if (!this.#alive || this.#queued) return;
    this.#queued = true;
    queueMicrotask(() => {
      this.#queued = false;
      if (!this.#alive) return;
      this.flush();
      this.#scheduleWake();
    });
  }

  stop(): void {
    this.#alive = false;
    for (const u of this.#unlisten) u();
    if (this.#wake !== null) this.consumer.stream.bus.clock.clearTimeout(this.#wake);
    this.#wake = null;
  }

  #scheduleWake(): void {
    const clock = this.consumer.stream.bus.clock;
    const at = this.consumer.nextWakeAt();
    if (this.#wake !== null) clock.clearTimeout(this.#wake);
    this.#wake = null;
    if (at === null) return;
    this.#wake = clock.setTimeout(() => {
      this.#wake = null;
      this.kick();
    }, at - clock.now());
  }
}

/** A delivered message as the shared consume loops see it (`ConsumedMessage`): settling it twice is a no-op, as in nats.js. */
class SimMessage<T> implements ConsumedMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  readonly seq: number;
  readonly info: { readonly deliveryCount: number };
  #settled = false;

  constructor(
    readonly consumer: SimConsumer<T>,
    delivery: Delivery<T>,
  ) {
    this.subject = delivery.msg.subject;
    this.seq = delivery.msg.seq;
    this.data = consumer.stream.payload(this.seq);
    this.info = { deliveryCount: delivery.deliveryCount };
  }

  #settle(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    return true;
  }
  ack(): void {
    if (this.#settle()) this.consumer.ack(this.seq);
  }
  nak(millis = 0): void {
    if (this.#settle()) this.consumer.nak(this.seq, millis);
  }
  term(): void {
    if (this.#settle()) this.consumer.term(this.seq);
  }
  working(): void {
    if (!this.#settled) this.consumer.working(this.seq);
  }
}

/**
 * A pull subscription of an explicit-ack consumer, as the messages an async iterator yields (the
 * shape `consumeValidated` iterates on JetStream): up to `batch` at a time are taken from the
 * consumer; when none is deliverable it waits for a publish, the server, or a redelivery.
 */
export class SimSubscription<T> implements AsyncIterable<ConsumedMessage> {
  readonly #pump: Pump<T>;
  #buffer: SimMessage<T>[] = [];
  #waiting: ((r: IteratorResult<ConsumedMessage>) => void) | null = null;

  constructor(
    readonly consumer: SimConsumer<T>,
    readonly batch = 100,
  ) {
    this.#pump = new Pump(consumer, () => this.#fill());
    this.#pump.kick();
  }

  #fill(): void {
    if (!this.#waiting) return;
    if (this.#buffer.length === 0) this.#buffer = this.consumer.pull(this.batch).map((d) => new SimMessage(this.consumer, d));
    const next = this.#buffer.shift();
    if (!next) return;
    const resolve = this.#waiting;
    this.#waiting = null;
    resolve({ value: next, done: false });
  }

  /** The process dies or stops: whatever it holds stays delivered and unacknowledged. */
  stop(): void {
    this.#pump.stop();
    this.#buffer = [];
    const resolve = this.#waiting;
    this.#waiting = null;
    resolve?.({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<ConsumedMessage> {
    return {
      next: () => {
        if (!this.#pump.alive) return Promise.resolve({ value: undefined, done: true });
        const next = this.#buffer.shift();
        if (next) return Promise.resolve({ value: next, done: false });
        return new Promise((resolve) => {
          this.#waiting = resolve;
          this.#pump.kick();
        });
      },
      return: () => {
        this.stop();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

/**
 * An engine partition's consumer (ack policy "all") for one engine process: the
 * `PartitionConsumer` the shared partition loop drives. `kill()` is the process dying: it
 * delivers nothing more, and its acks are lost.
 */
export class SimPartitionConsumer<T> implements PartitionConsumer {
  #alive = true;
  #pump: Pump<T> | null = null;

  constructor(
    readonly consumer: SimConsumer<T>,
    /** Most messages one pull takes (the client's max_messages). */
    readonly maxMessages: number,
  ) {
    if (consumer.ackPolicy !== "all") throw new Error(`consumer ${consumer.name}: an engine partition consumer acks "all"`);
  }

  kill(): void {
    this.#alive = false;
    this.#pump?.stop();
  }

  async prepare(force: boolean): Promise<number> {
    if (!this.#alive) throw new Error("the process is dead");
    const info = this.consumer.info();
    if (!force && info.ackPending === 0) return info.delivered;
    this.consumer.recreate();
    return 0;
  }

  async subscribe(handlers: { deliver(message: EventMessage): void; ended(): void }): Promise<EventSubscription> {
    if (!this.#alive) throw new Error("the process is dead");
    const { consumer } = this;
    const pump = new Pump(consumer, () => {
      for (const d of consumer.pull(this.maxMessages)) {
        handlers.deliver({ subject: d.msg.subject, data: consumer.stream.payload(d.msg.seq), seq: d.msg.seq, deliverySeq: d.deliverySeq });
      }
    });
    this.#pump = pump;
    pump.kick();
    return {
      ackThrough: (seq) => {
        if (pump.alive) consumer.ack(seq);
      },
      stop: () => pump.stop(),
    };
  }
}
