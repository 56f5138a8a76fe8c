import { ErrorCode, FencelineError, type Clock } from "@fenceline/contracts";
import type { Prng } from "./prng.js";

/**
 * An in-memory model of the parts of NATS JetStream the control plane relies on, on the virtual
 * clock: streams with sequences and `Nats-Msg-Id` deduplication within a window, durable
 * consumers with explicit acks, naks with a delay, redelivery after the ack wait, the ack floor,
 * and `working()`. Like a pull consumer, a worker takes a batch at a time: every message of the
 * batch counts as delivered (its ack wait runs) until it is acked, so a worker that dies leaves
 * the whole batch to be redelivered after the ack wait, while later messages keep coming.
 *
 * Faults it models: the server being unreachable (publishes throw, nothing is delivered, acks and
 * naks are lost), lost acks (the message comes again: a duplicate delivery), and deliveries that
 * are lost in transit (the message comes again later, out of order).
 */

export type StoredMessage<T> = { readonly seq: number; readonly id: string; readonly key: string; readonly data: T; readonly at: number };
export type Delivery<T> = { readonly msg: StoredMessage<T>; readonly deliveryCount: number };
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

export class SimStream<T> {
  readonly messages: StoredMessage<T>[] = [];
  readonly #byKey = new Map<string, number[]>();
  readonly #dedup = new Map<string, { seq: number; at: number }>();
  readonly #listeners: Array<() => void> = [];

  constructor(
    readonly name: string,
    readonly bus: SimBus,
    readonly duplicateWindowMs: number,
  ) {}

  publish(id: string, key: string, data: T): PublishAck {
    if (!this.bus.available) throw new BusUnavailableError(`cannot publish ${id} to ${this.name}`);
    const now = this.bus.clock.now();
    const seen = this.#dedup.get(id);
    if (seen && now - seen.at < this.duplicateWindowMs) return { seq: seen.seq, duplicate: true };
    const seq = this.messages.length + 1;
    this.messages.push({ seq, id, key, data, at: now });
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

  onPublish(listener: () => void): void {
    this.#listeners.push(listener);
  }
}

type MsgState = { deliveredAt: number | null; availableAt: number; deliveries: number };

export class SimConsumer<T> {
  /** Unacknowledged messages of this consumer, by sequence, oldest first. */
  readonly #unacked = new Map<number, MsgState>();
  #scanned = 0;
  #acked = 0;
  readonly #listeners: Array<() => void> = [];

  constructor(
    readonly name: string,
    readonly stream: SimStream<T>,
    readonly filter: (msg: StoredMessage<T>) => boolean,
    readonly ackWaitMs: number,
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
      const chaos = bus.chaos;
      if (chaos && bus.rng.chance(chaos.lostDelivery)) {
        // Lost on its way to the client: the server redelivers it after its ack wait.
        st.availableAt = now + bus.rng.int(1, this.ackWaitMs);
        st.deliveredAt = null;
        bus.stats.lostDeliveries += 1;
        continue;
      }
      out.push({ msg: this.stream.get(seq)!, deliveryCount: st.deliveries });
      if (out.length >= max) break;
    }
    return out;
  }

  ack(seq: number): void {
    const bus = this.stream.bus;
    if (!bus.available) return;
    if (!this.#unacked.has(seq)) return;
    if (bus.chaos && bus.rng.chance(bus.chaos.lostAck)) {
      bus.stats.lostAcks += 1;
      return;
    }
    this.#unacked.delete(seq);
    this.#acked = Math.max(this.#acked, seq);
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

  onMessage(listener: () => void): void {
    this.#listeners.push(listener);
  }
}

export class SimBus {
  available = true;
  chaos: BusChaos | null = null;
  readonly stats = { lostAcks: 0, lostDeliveries: 0 };
  readonly #availabilityListeners: Array<() => void> = [];

  constructor(
    readonly clock: Clock,
    readonly rng: Prng,
  ) {}

  setAvailable(available: boolean): void {
    if (this.available === available) return;
    this.available = available;
    for (const l of this.#availabilityListeners) l();
  }

  onAvailabilityChange(listener: () => void): void {
    this.#availabilityListeners.push(listener);
  }
}

/**
 * A consumer's processing loop, one message at a time in the order delivered, as
 * `consumeValidated` runs it: it takes a batch, handles each message, and sleeps until a new
 * message or a redelivery is due. `handle` settles each message itself (ack or nak).
 */
export class SimWorker<T> {
  #busy = false;
  #alive = true;
  #buffer: Delivery<T>[] = [];
  #wake: unknown = null;
  #kickQueued = false;

  constructor(
    readonly consumer: SimConsumer<T>,
    readonly handle: (delivery: Delivery<T>) => Promise<void>,
    readonly batch = 100,
  ) {
    consumer.onMessage(() => this.kick());
    consumer.stream.bus.onAvailabilityChange(() => this.kick());
  }

  get alive(): boolean {
    return this.#alive;
  }

  /** Runs the loop soon (in a microtask) unless it is running already. */
  kick(): void {
    if (!this.#alive || this.#busy || this.#kickQueued) return;
    this.#kickQueued = true;
    queueMicrotask(() => {
      this.#kickQueued = false;
      void this.#run();
    });
  }

  /** The process dies: whatever it holds stays delivered and unacknowledged. */
  kill(): void {
    this.#alive = false;
    this.#buffer = [];
    const clock = this.consumer.stream.bus.clock;
    if (this.#wake !== null) clock.clearTimeout(this.#wake);
    this.#wake = null;
  }

  async #run(): Promise<void> {
    if (!this.#alive || this.#busy) return;
    this.#busy = true;
    try {
      for (;;) {
        if (!this.#alive) return;
        if (this.#buffer.length === 0) this.#buffer = this.consumer.pull(this.batch);
        const next = this.#buffer.shift();
        if (!next) break;
        await this.handle(next);
      }
    } finally {
      this.#busy = false;
    }
    this.#scheduleWake();
  }

  #scheduleWake(): void {
    if (!this.#alive) return;
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
