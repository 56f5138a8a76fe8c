import { randomInt } from "node:crypto";
import fc from "fast-check";

/** Set it to re-run a property test with the seed a failure printed. */
export const PROPERTY_SEED_ENV = "FENCELINE_PROPERTY_SEED";

/** The seed of this run: FENCELINE_PROPERTY_SEED when set, else a fresh one. */
export function propertySeed(env: NodeJS.ProcessEnv = process.env): number {
  const given = env[PROPERTY_SEED_ENV];
  if (given === undefined || given === "") return randomInt(-(2 ** 31), 2 ** 31);
  const seed = Number(given);
  if (!Number.isSafeInteger(seed)) throw new Error(`${PROPERTY_SEED_ENV} must be an integer, got "${given}"`);
  return seed;
}

/**
 * fc.assert with a fresh seed each run (or the given one), so every run explores new sequences;
 * a failure names the seed and the command that runs it again.
 */
export function assertWithSeed<T>(property: fc.IProperty<T>, options: { numRuns: number; seed?: number }): number {
  const seed = options.seed ?? propertySeed();
  try {
    fc.assert(property, { seed, numRuns: options.numRuns });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(
      `property failed with seed ${seed}; run it again with ${PROPERTY_SEED_ENV}=${seed} pnpm exec vitest run statecharts/test/fast-step.test.ts\n${message}`,
      { cause: err },
    );
  }
  return seed;
}
