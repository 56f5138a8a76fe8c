import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { z } from "zod";
import * as contracts from "../src/index.js";
import { ASK_ZOD, COMMAND_KINDS, Heartbeat, NodeEvent, createEvent, createFastParse, parseMessage } from "../src/index.js";

/**
 * The compiled validators (fast-parse.ts) against zod itself: whatever a compiled validator
 * accepts, zod accepts, with the very same result (keys, key order, values); what it cannot tell
 * it leaves to zod. On valid messages it must decide (or the engine would not use it), and on
 * mutated ones it must never accept what zod refuses.
 */

const contract = {
  timing: { controlPlaneTimeoutMs: 6_000, peerRoundMs: 1_000, watchdogTimeoutMs: 10_000, marginMs: 2_000 },
  heartbeatIntervalMs: 1_000,
  watchdog: { kind: "softdog", timeoutMs: 10_000 },
  membershipVersion: 3,
};
const envelope = (type: string, data: Record<string, unknown>) => ({
  v: 1,
  type,
  id: `${type}:n-1.rack:7`,
  node: "n-1.rack",
  at: 1_767_225_600_000,
  source: "test",
  data,
});
const results = COMMAND_KINDS.map((kind) =>
  envelope("command.result", { commandId: "cmd:n-1.rack:3:0", kind, epoch: 2, ok: kind !== "reprovision", reason: "why" }),
);
const VALID_EVENTS: unknown[] = [
  envelope("node.joined", {
    bootId: "b1",
    incarnation: 1,
    hostGroup: "g",
    controlPlane: false,
    checksums: { kubelet: "abc", "10": "x" },
    contract,
    peerUrl: "http://10.0.0.1:7946",
  }),
  envelope("node.joined", { bootId: "b1", incarnation: 0 }),
  envelope("heartbeat.missed", { lastSeenAt: 5, bootId: "b1" }),
  envelope("heartbeat.resumed", {
    bootId: "b2",
    incarnation: 2,
    selfFenced: { at: 4, reason: "cut off", bootId: "b1" },
    contract: { ...contract, withdrawn: true },
  }),
  envelope("boot.changed", { previousBootId: "b1", bootId: "b2" }),
  envelope("signal.unhealthy", { signal: "condition:Ready", since: 3, detail: "NotReady" }),
  envelope("signal.healthy", { signal: "serf" }),
  envelope("timer.fired", { timer: "suspect", due: 99 }),
  envelope("operator.pause", { reason: "maintenance" }),
  envelope("operator.resume", {}),
  envelope("operator.reset", { reason: "fixed" }),
  envelope("config.desired", { checksums: { a: "1" }, hostGroup: "g" }),
  envelope("config.reported", { bootId: "b1", checksums: {} }),
  envelope("contract.reported", { bootId: "b1", contract }),
  envelope("node.forgotten", { reason: "deleted" }),
  ...results,
  envelope("command.result", { commandId: "c", kind: "reprovision", epoch: 1, ok: false, facts: { attempt: 2, ticket: 7 }, output: "log" }),
  envelope("command.result", { commandId: "c", kind: "fence.poweroff", epoch: 1, ok: true, facts: { device: "ipmi", power: "off" } }),
  envelope("command.result", { commandId: "c", kind: "slot.acquire", epoch: 1, ok: true, facts: { majoritySince: 1 } }),
];
// The key order detectors write (createEvent: v, type, then the envelope), which is not the schema's.
VALID_EVENTS.push(contracts.createEvent("timer.fired", { id: "t", node: "n", at: 1, source: "timer", data: { timer: "x", due: 2 } }));

/** Same values, same keys in the same order, all the way down. */
function sameResult(a: unknown, b: unknown): boolean {
  if (typeof a !== "object" || a === null || typeof b !== "object" || b === null) return Object.is(a, b);
  if (Array.isArray(a) !== Array.isArray(b) || Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const ka = Reflect.ownKeys(a);
  const kb = Reflect.ownKeys(b);
  if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false;
  return ka.every((k) => sameResult((a as Record<PropertyKey, unknown>)[k], (b as Record<PropertyKey, unknown>)[k]));
}

/** Checks one input: returns whether the compiled validator decided. */
function agrees(schema: z.ZodType, input: unknown): boolean {
  const fast = createFastParse(schema)!;
  const out = fast(input);
  if (out === ASK_ZOD) return false;
  const zod = schema.safeParse(input);
  expect(zod.success, `zod refuses what the compiled validator accepted: ${JSON.stringify(input)}`).toBe(true);
  expect(
    sameResult(out, zod.data),
    `different results for ${JSON.stringify(input)}: ${JSON.stringify(out)} vs ${JSON.stringify(zod.data)}`,
  ).toBe(true);
  return true;
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** Every path to a value inside `v` (objects only; arrays do not occur in events). */
function paths(v: unknown, prefix: string[] = []): string[][] {
  if (typeof v !== "object" || v === null) return [prefix];
  return [prefix, ...Object.keys(v).flatMap((k) => paths((v as Record<string, unknown>)[k], [...prefix, k]))];
}

const edgeValue = fc.oneof(
  fc.constantFrom<unknown>(
    undefined,
    null,
    "",
    "x",
    "n-1",
    "N_1",
    "-a",
    "a-",
    "a".repeat(64),
    "a".repeat(65),
    "a".repeat(129),
    "a".repeat(254),
    0,
    -1,
    1.5,
    2 ** 53,
    -(2 ** 53),
    Number.MAX_SAFE_INTEGER,
    NaN,
    Infinity,
    -Infinity,
    true,
    false,
    [],
    {},
    { __proto__: null },
    1,
    "off",
    "softdog",
    "suspect",
    "command.result",
    "taint.add",
  ),
  fc.jsonValue({ maxDepth: 2 }),
  fc.string({ maxLength: 300 }),
  fc.integer(),
  fc.double(),
);

type Mutation = { kind: "set"; value: unknown } | { kind: "delete" } | { kind: "add"; key: string; value: unknown } | { kind: "proto" };
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  edgeValue.map((value) => ({ kind: "set" as const, value })),
  fc.constant({ kind: "delete" as const }),
  fc
    .tuple(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom("__proto__", "constructor", "toString", "v", "data", "0")), edgeValue)
    .map(([key, value]) => ({ kind: "add" as const, key, value })),
  fc.constant({ kind: "proto" as const }),
);

/** A copy of `base` with one mutation at the `pick`-th path (JSON.parse, so __proto__ is an own key as on the wire). */
function mutate(base: unknown, pick: number, m: Mutation): unknown {
  const all = paths(base);
  const path = all[pick % all.length]!;
  if (m.kind === "proto") {
    const text = JSON.stringify(base);
    return JSON.parse(text.replace("{", '{"__proto__":{"x":1},'));
  }
  const root = { value: clone(base) } as Record<string, unknown>;
  let parent: Record<string, unknown> = root;
  let key = "value";
  for (const k of path) {
    parent = parent[key] as Record<string, unknown>;
    key = k;
  }
  if (m.kind === "set") parent[key] = m.value;
  else if (m.kind === "delete") delete parent[key];
  else {
    const target = parent[key];
    // An own property, as JSON.parse makes it (even "__proto__").
    const add = (o: object) => Object.defineProperty(o, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
    if (typeof target === "object" && target !== null) add(target);
    else parent[key] = add({});
  }
  return root.value;
}

describe("compiled validators", () => {
  it("compile the schemas the engine and the heartbeat detector read", () => {
    expect(createFastParse(NodeEvent)).not.toBeNull();
    expect(createFastParse(Heartbeat)).not.toBeNull();
    // What they do not compile, zod parses alone.
    expect(createFastParse(z.string().transform((s) => s.length))).toBeNull();
    expect(createFastParse(z.object({ a: z.string().default("x") }))).toBeNull();
    expect(createFastParse(z.union([z.string(), z.number()]))).toBeNull();
    expect(createFastParse(z.string().refine((s) => s !== "x"))).toBeNull();
    expect(createFastParse(z.string().trim())).toBeNull();
  });

  it("decide every valid event, with zod's result", () => {
    for (const event of VALID_EVENTS) {
      expect(NodeEvent.safeParse(event).error, JSON.stringify(event)).toBeUndefined();
      expect(agrees(NodeEvent, event), `not decided: ${JSON.stringify(event)}`).toBe(true);
      expect(agrees(NodeEvent, clone(event))).toBe(true);
    }
  });

  it("never accept a mutated event that zod refuses, and give zod's result for those it accepts", () => {
    let decided = 0;
    fc.assert(
      fc.property(fc.nat(VALID_EVENTS.length - 1), fc.nat(), mutationArb, (i, pick, m) => {
        if (agrees(NodeEvent, mutate(VALID_EVENTS[i], pick, m))) decided++;
      }),
      { numRuns: 5_000 },
    );
    expect(decided).toBeGreaterThan(100);
  });

  it("return a plain object that already is zod's result itself, and a copy of any other", () => {
    const fast = createFastParse(NodeEvent)!;
    const event = clone(createEvent("signal.unhealthy", { id: "e:1", node: "n-1", at: 1, source: "t", data: { signal: "s", since: 0 } }));
    expect(fast(event)).toBe(event);
    // A key out of the shape's order, an unknown key (stripped), an inherited prototype: copies.
    const reordered = { node: "n-1.rack", ...clone(VALID_EVENTS[6] as object) };
    const extra = { ...clone(VALID_EVENTS[6] as object), extra: 1 };
    const inherited = Object.assign(Object.create({ inherited: true }) as object, clone(VALID_EVENTS[6] as object));
    for (const input of [reordered, extra, inherited]) {
      expect(fast(input)).not.toBe(input);
      agrees(NodeEvent, input); // zod's result, when decided (an event refuses unknown keys)
    }
    expect(fast(reordered)).not.toBe(ASK_ZOD);
    // A nested object copied (its own keys out of order) makes its parent a copy too.
    const nested = clone(VALID_EVENTS[0]) as { data: Record<string, unknown> };
    nested.data = { incarnation: 1, ...nested.data };
    const out = fast(nested) as { data: unknown };
    expect(out).not.toBe(nested);
    expect(out.data).not.toBe(nested.data);
    expect(agrees(NodeEvent, nested)).toBe(true);
  });

  it("leave own __proto__ keys, inherited keys and non-plain records to zod", () => {
    const joined = VALID_EVENTS[0] as { data: Record<string, unknown> };
    const withProto = JSON.parse(JSON.stringify(joined).replace('"checksums":{', '"checksums":{"__proto__":{"polluted":"1"},'));
    expect(Object.hasOwn(withProto.data.checksums, "__proto__")).toBe(true);
    agrees(NodeEvent, withProto);
    agrees(NodeEvent, JSON.parse(JSON.stringify(joined).replace('{"v":1', '{"__proto__":{"v":1},"v":1')));
    const inherited = Object.create({ extra: 1 });
    Object.assign(inherited, clone(VALID_EVENTS[2]));
    agrees(NodeEvent, inherited);
    const record = z.record(
      z.string(),
      z
        .unknown()
        .transform((x) => x)
        .pipe(z.any()),
    );
    expect(createFastParse(record)).toBeNull();
    const numbers = z.record(z.string(), z.number());
    agrees(numbers, JSON.parse('{"__proto__":{"a":1},"b":2}'));
    agrees(
      numbers,
      new (class {
        a = 1;
      })(),
    );
    agrees(numbers, Object.create(null));
    const objects = z.record(z.string(), z.object({ a: z.number() }));
    agrees(objects, JSON.parse('{"__proto__":{"a":1},"b":{"a":2}}'));
  });

  it("agree with zod on arbitrary values, for every compiled schema of the contracts", () => {
    const schemas = Object.entries(contracts).filter(([, v]) => v instanceof z.ZodType && createFastParse(v as z.ZodType)) as Array<
      [string, z.ZodType]
    >;
    expect(schemas.length).toBeGreaterThan(20);
    for (const [, schema] of schemas)
      fc.assert(
        fc.property(fc.oneof(edgeValue, fc.anything()), (v) => void agrees(schema, v)),
        { numRuns: 200 },
      );
  });

  it("agree with zod on the check kinds they compile, one schema each", () => {
    const schemas: z.ZodType[] = [
      z.string().min(2).max(4),
      z.string().length(3),
      z.string().regex(/^a+$/),
      z.email(),
      z.number().int().min(-3).max(7),
      z.number().gt(0).lt(1),
      z.number().multipleOf(3),
      z.int32(),
      z.uint32(),
      z.string().min(1).max(2),
      z.number().nonnegative(),
      z.number().int().gte(-5).lte(5),
      z.literal(["a", 1, true]),
      z.enum(["x", "y"]),
      z.object({ a: z.string().nullable(), b: z.number().optional() }),
      z.object({ a: z.string() }).strict(),
      z.record(z.string().max(2), z.number()),
      z.discriminatedUnion("t", [z.object({ t: z.literal("a"), n: z.number() }), z.object({ t: z.literal(["b", "c"]) }).strict()]),
      z.never(),
    ];
    // Lengths count code points, not UTF-16 units: astral characters and lone surrogates around
    // each bound; integers around each format's range.
    const unicode = fc.oneof(
      fc.string({ unit: "binary", maxLength: 9 }),
      fc.constantFrom("😀", "a😀", "😀😀", "😀😀😀", "\ud800", "\ud800\ud800", "a\udc00", "aaaa😀"),
    );
    const integers = fc.constantFrom(-6, -5, 5, 6, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1, 2 ** 32 - 1, 2 ** 32, -0, 0.5);
    const values = fc.oneof(
      edgeValue,
      unicode,
      integers,
      fc.anything(),
      fc.record(
        {
          t: fc.constantFrom("a", "b", "c", "d"),
          n: fc.oneof(fc.integer(), fc.string()),
          a: fc.oneof(fc.string(), fc.constant(null)),
          b: fc.option(fc.double(), { nil: undefined }),
        },
        { requiredKeys: [] },
      ),
    );
    for (const schema of schemas) {
      expect(createFastParse(schema), schema.def.type).not.toBeNull();
      fc.assert(
        fc.property(values, (v) => void agrees(schema, v)),
        { numRuns: 500 },
      );
    }
  });

  it("leave the wording of every refusal to zod (parseMessage's dead-letter reasons unchanged)", () => {
    const bad = new TextEncoder().encode(JSON.stringify({ ...(VALID_EVENTS[2] as object), node: "Not A Name" }));
    const parsed = parseMessage(NodeEvent, bad);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toBe(z.prettifyError(NodeEvent.safeParse(JSON.parse(new TextDecoder().decode(bad))).error!));
  });

  it("read the bytes as Buffer's toString does: a byte order mark is not JSON, an invalid sequence is replaced", () => {
    const event = JSON.stringify(VALID_EVENTS[2]);
    const inside = (bytes: Uint8Array) => {
      const buffer = new Uint8Array(bytes.byteLength + 16);
      buffer.set(bytes, 7);
      return buffer.subarray(7, 7 + bytes.byteLength);
    };
    expect(parseMessage(NodeEvent, inside(new TextEncoder().encode(event))).ok).toBe(true);
    const withBom = inside(new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(event)]));
    expect(parseMessage(NodeEvent, withBom)).toMatchObject({ ok: false, reason: "not-json" });
    const invalid = new TextEncoder().encode(JSON.stringify({ ...(VALID_EVENTS[2] as object), source: "sXs" }));
    invalid[invalid.indexOf(0x58)] = 0xff; // the X
    const parsed = parseMessage(NodeEvent, inside(invalid));
    expect(parsed.ok).toBe(true);
    if (parsed.ok) expect(parsed.value.source).toBe("s\uFFFDs");
  });
});
