/**
 * The lab's only source of randomness: mulberry32, a 32-bit seeded generator. Small, fast and
 * the same on every platform, so a seed names one exact run. Nothing in the lab path may use
 * Math.random.
 */
export class Prng {
  #state: number;

  constructor(seed: number) {
    // Mix the seed so neighbouring seeds start far apart.
    this.#state = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ 0xc2b2ae35) >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max] (both included). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("pick from an empty list");
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** A new array with the items in random order (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  /** A child generator for an independent stream of choices (so adding a draw here does not shift it). */
  fork(label: number): Prng {
    return new Prng((Math.floor(this.next() * 4294967296) ^ Math.imul(label, 0x27d4eb2f)) >>> 0);
  }
}
