import type { z } from "zod";
import { util } from "zod/v4/core";

/**
 * A lean validator compiled from a zod schema, for the schemas of the messages Fenceline reads
 * most (node events): it accepts what the schema accepts and returns what `schema.parse` returns
 * (the same keys in the same order, unknown keys of a non-strict object dropped), several times
 * faster, or `ASK_ZOD` when it cannot tell. The caller then runs zod itself, which decides and
 * words the error: the compiled validator never rejects anything, it only accepts. A plain object
 * that already is exactly what zod would return (its keys those of the result, in the same order,
 * each value returned as it was) is returned itself instead of a copy: the caller's input is
 * JSON.parse's, which nobody else holds.
 *
 * It walks the schema's own definition (zod 4's `_zod.def`) and runs the schema's own checks
 * (`_zod.check`: lengths, regexes, integer formats, bounds), each after an inline test of what
 * certainly passes, written from that check's own parameters (`surePass`), so the rules live in
 * one place, the zod schema. Only these kinds are compiled: string, number, boolean, literal,
 * enum, never, optional, nullable, object (strict or stripping), record with string keys, and
 * discriminated union; only the check kinds in `PURE_CHECKS`. Anything else (transforms, pipes,
 * defaults, coercion, refinements, lazy, plain unions, arrays...) makes `createFastParse` return
 * null, and `parseMessage` runs zod alone. contracts/test/fast-parse.test.ts checks it against zod
 * on valid and mutated messages.
 */

/** What a compiled validator returns when zod must decide. */
export const ASK_ZOD: unique symbol = Symbol("ask zod");
export type FastParse<T> = (input: unknown) => T | typeof ASK_ZOD;

type Parse = (input: unknown) => unknown;
type Check = { _zod: { def: { check: string; when?: (payload: Payload) => boolean }; check: (payload: Payload) => unknown } };
type Payload = { value: unknown; issues: unknown[] };
type Def = Record<string, unknown> & { type: string; checks?: Check[] };
type Schema = {
  _zod: {
    def: Def;
    traits: Set<string>;
    optin?: string;
    optout?: string;
    values?: Set<unknown>;
    propValues?: Record<string, Set<unknown>>;
  };
};

/** Checks that only read the value (none rewrites it, none is asynchronous). */
const PURE_CHECKS = new Set([
  "min_length",
  "max_length",
  "length_equals",
  "string_format",
  "number_format",
  "greater_than",
  "less_than",
  "multiple_of",
]);

class Unsupported extends Error {}

const compiled = new WeakMap<object, Parse | null>();

/** The compiled validator of `schema`, or null when the schema uses something it does not compile. */
export function createFastParse<S extends z.ZodType>(schema: S): FastParse<z.infer<S>> | null {
  let parse = compiled.get(schema);
  if (parse !== undefined) return parse as FastParse<z.infer<S>> | null;
  try {
    parse = compile(schema as unknown as Schema, new Map());
  } catch (err) {
    if (!(err instanceof Unsupported)) throw err;
    parse = null;
  }
  compiled.set(schema, parse);
  return parse as FastParse<z.infer<S>> | null;
}

/** One payload for every check run (checks run one at a time and keep no reference to it). */
const payload: Payload = { value: undefined, issues: [] };

/** What a primitive type accepts, as zod's parse of that type tests it. */
const TYPE_TESTS: Record<string, string> = {
  string: `typeof value === "string"`,
  number: `typeof value === "number" && Number.isFinite(value)`,
  boolean: `typeof value === "boolean"`,
};

/**
 * An expression of `value` that is true only when the check certainly passes (zod's own check
 * would push no issue), or null when there is none: then the check's own function decides. Only
 * for a string or number schema, whose type test ran first, and only what zod's check does for
 * that kind (zod/v4/core/checks.js): a string's length in UTF-16 units is at least its length in
 * code points and at most twice it; `.regex()` is its pattern's test; an integer format is a safe
 * integer within its range. The check's function still runs whenever the expression is false,
 * so an expression may say "not sure" as often as it likes, never "passes" wrongly.
 */
function surePass(type: string, check: Check, index: number, names: string[], values: unknown[]): string | null {
  const def = check._zod.def as Check["_zod"]["def"] & Record<string, unknown>;
  const int = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n);
  const finite = (n: unknown): n is number => typeof n === "number" && Number.isFinite(n);
  if (type === "string") {
    if (def.check === "min_length" && int(def.minimum)) return `value.length >= ${2 * def.minimum}`;
    if (def.check === "max_length" && int(def.maximum)) return `value.length <= ${def.maximum}`;
    // Only zod's own `.regex()`: other string formats (url, email...) may check more than a pattern.
    if (def.check === "string_format" && def.format === "regex" && def.pattern instanceof RegExp) {
      names.push(`r${index}`);
      values.push(def.pattern);
      return `(r${index}.lastIndex = 0, r${index}.test(value))`;
    }
    return null;
  }
  if (type === "number") {
    if (def.check === "greater_than" && finite(def.value)) return `value ${def.inclusive ? ">=" : ">"} ${def.value}`;
    if (def.check === "less_than" && finite(def.value)) return `value ${def.inclusive ? "<=" : "<"} ${def.value}`;
    // An integer format, as zod's check tells one (its name has "int"), within zod's own range.
    if (def.check === "number_format" && typeof def.format === "string" && def.format.includes("int")) {
      const range = (util.NUMBER_FORMAT_RANGES as Record<string, readonly [number, number] | undefined>)[def.format];
      if (range) return `Number.isSafeInteger(value) && value >= ${range[0]} && value <= ${range[1]}`;
    }
  }
  return null;
}

/**
 * A validator that runs `base` (null for a primitive type: its test in `TYPE_TESTS`), then the
 * schema's checks, as zod's runChecks applies them: generated code that first tests what it can
 * inline (`surePass`) and otherwise calls the check's own function, so every call site sees one
 * check.
 */
function withChecks(schema: Schema, base: Parse | null): Parse {
  const checks: Check[] = [...(schema._zod.def.checks ?? [])];
  // A schema that is a check itself (z.email(), z.int()...) runs first, as in zod.
  if (schema._zod.traits.has("$ZodCheck")) checks.unshift(schema as unknown as Check);
  if (checks.length === 0 && base) return base;
  for (const c of checks) if (!PURE_CHECKS.has(c._zod.def.check)) throw new Unsupported(`check ${c._zod.def.check}`);
  const names = ["p", "ASK", "base"];
  const values: unknown[] = [payload, ASK_ZOD, base];
  const lines = base
    ? ["value = base(value);", "if (value === ASK) return ASK;"]
    : [`if (!(${TYPE_TESTS[schema._zod.def.type]})) return ASK;`];
  checks.forEach((c, i) => {
    names.push(`c${i}`);
    values.push(c._zod.check);
    let call = `c${i}(p); if (p.issues.length !== 0) { p.issues.length = 0; p.value = undefined; return ASK; }`;
    if (c._zod.def.when) {
      names.push(`w${i}`);
      values.push(c._zod.def.when);
      call = `if (w${i}(p)) { ${call} }`;
    }
    const run = `p.value = value; ${call} p.value = undefined;`;
    const sure = base ? null : surePass(schema._zod.def.type, c, i, names, values);
    lines.push(sure ? `if (!(${sure})) { ${run} }` : run);
  });
  lines.push("return value;");
  return generate(names, values, `return (value) => {\n${lines.join("\n")}\n};`) as Parse;
}

/** A function generated from source, with `values` bound to `names` (zod compiles its objects the same way). */
function generate(names: string[], values: unknown[], body: string): unknown {
  if (!util.allowsEval.value) throw new Unsupported("no eval");
  return new Function(...names, body)(...values);
}

function compile(schema: Schema, seen: Map<Schema, Parse>): Parse {
  const done = seen.get(schema);
  if (done) return done;
  // Recursive schemas are not compiled (only z.lazy makes them, and it is not compiled either).
  let own: Parse | undefined;
  seen.set(schema, (input) => own!(input));
  own = withChecks(schema, schema._zod.def.type in TYPE_TESTS && !schema._zod.def.coerce ? null : compileType(schema, seen));
  seen.set(schema, own);
  return own;
}

function compileType(schema: Schema, seen: Map<Schema, Parse>): Parse {
  const def = schema._zod.def;
  const traits = schema._zod.traits;
  if (def.coerce) throw new Unsupported("coercion");
  switch (def.type) {
    case "literal":
    case "enum": {
      const values = schema._zod.values;
      if (!values) throw new Unsupported(`${def.type} without values`);
      return (input) => (values.has(input) ? input : ASK_ZOD);
    }
    case "never":
      return () => ASK_ZOD;
    case "optional": {
      if (!traits.has("$ZodOptional") || traits.has("$ZodExactOptional")) throw new Unsupported("optional variant");
      const innerSchema = def.innerType as Schema;
      if (innerSchema._zod.optin === "defaulted") throw new Unsupported("optional default");
      const inner = compile(innerSchema, seen);
      return (input) => (input === undefined ? undefined : inner(input));
    }
    case "nullable": {
      const inner = compile(def.innerType as Schema, seen);
      return (input) => (input === null ? null : inner(input));
    }
    case "object":
      return compileObject(schema, seen);
    case "record":
      return compileRecord(schema, seen);
    case "union":
      return compileDiscriminatedUnion(schema, seen);
    default:
      throw new Unsupported(def.type);
  }
}

function compileObject(schema: Schema, seen: Map<Schema, Parse>): Parse {
  const def = schema._zod.def as Def & { shape: Record<string, Schema>; catchall?: Schema };
  if (Object.getOwnPropertySymbols(def.shape).length > 0) throw new Unsupported("symbol keys");
  const strict = def.catchall !== undefined;
  if (strict && def.catchall!._zod.def.type !== "never") throw new Unsupported("catchall");
  const keys = Object.keys(def.shape);
  if (keys.includes("__proto__")) throw new Unsupported("__proto__ key");
  const fields = keys.map((key) => {
    const field = def.shape[key]!;
    const { optin, optout } = field._zod;
    const optional = optin === "optional" && optout === "optional";
    if (!optional && (optin !== undefined || optout !== undefined)) throw new Unsupported(`key ${key}: optin ${optin}, optout ${optout}`);
    return { key, optional, parse: compile(field, seen) };
  });
  // Zod builds the result in the shape's order, with each present key (an absent optional one left
  // out) and, when strict, refuses unknown keys; a stripping object drops them. Generated code, so
  // that each key is a constant property access. Each value is checked into a local first: the
  // input itself is the result when it is a plain object whose own keys are the present ones, in
  // the shape's order, and whose values all came back unchanged; otherwise a copy is built.
  const v = fields.map((_, i) => `v${i}`);
  const lines = [
    "if (!isObject(input)) return ASK;",
    "let same = getPrototypeOf(input) === OBJECT;",
    "let present = 0;",
    ...(v.length > 0 ? [`let ${v.join(", ")};`] : []),
  ];
  fields.forEach(({ key, optional }, i) => {
    const k = JSON.stringify(key);
    const read = `present++; ${v[i]} = f${i}(input[${k}]); if (${v[i]} === ASK) return ASK; if (${v[i]} !== input[${k}]) same = false;`;
    lines.push(optional ? `const h${i} = ${k} in input; if (h${i}) { ${read} }` : `if (!(${k} in input)) return ASK; ${read}`);
  });
  // The input returned as it is has only the shape's keys (each one it lists is the next present
  // key of the shape), so a strict object's unknown keys are looked for only when it is copied.
  lines.push(
    "if (same) {",
    "  let i = 0, seen = 0;",
    "  for (const k in input) {",
    "    while (i < KEYS.length && !(KEYS[i] in input)) i++;",
    "    if (k !== KEYS[i]) { same = false; break; }",
    "    i++; seen++;",
    "  }",
    "  if (same && seen === present) return input;",
    "}",
  );
  if (strict) {
    const known = keys.map((key) => `k !== ${JSON.stringify(key)}`).join(" && ") || "true";
    lines.push(`for (const k in input) if (${known}) return ASK;`);
  }
  lines.push("const out = {};");
  fields.forEach(({ key, optional }, i) => {
    const k = JSON.stringify(key);
    lines.push(optional ? `if (h${i}) out[${k}] = ${v[i]};` : `out[${k}] = ${v[i]};`);
  });
  lines.push("return out;");
  return generate(
    ["isObject", "ASK", "getPrototypeOf", "OBJECT", "KEYS", ...fields.map((_, i) => `f${i}`)],
    [util.isObject, ASK_ZOD, Object.getPrototypeOf, Object.prototype, keys, ...fields.map((f) => f.parse)],
    `return (input) => {\n${lines.join("\n")}\n};`,
  ) as Parse;
}

function compileRecord(schema: Schema, seen: Map<Schema, Parse>): Parse {
  const def = schema._zod.def as Def & { keyType: Schema; valueType: Schema; mode?: string };
  if (def.mode !== undefined && def.mode !== "strict") throw new Unsupported(`record mode ${def.mode}`);
  if (def.keyType._zod.def.type !== "string" || def.keyType._zod.values) throw new Unsupported("record key type");
  const key = compile(def.keyType, seen);
  const value = compile(def.valueType, seen);
  // Zod's result: the input's own enumerable keys, in Reflect.ownKeys order, each checked; anything
  // unusual (a symbol, __proto__, a non-enumerable key) is left to zod.
  // The input itself when it is a plain object and every value came back unchanged (its keys,
  // in Reflect.ownKeys order, are the result's).
  return (input) => {
    if (!util.isPlainObject(input)) return ASK_ZOD;
    const record = input as Record<string, unknown>;
    const keys = Reflect.ownKeys(record);
    let same = Object.getPrototypeOf(record) === Object.prototype;
    const values: unknown[] = [];
    for (const k of keys) {
      if (typeof k !== "string" || k === "__proto__" || !Object.prototype.propertyIsEnumerable.call(record, k)) return ASK_ZOD;
      if (key(k) === ASK_ZOD) return ASK_ZOD;
      const v = value(record[k]);
      if (v === ASK_ZOD) return ASK_ZOD;
      if (v !== record[k]) same = false;
      values.push(v);
    }
    if (same) return record;
    const out: Record<string, unknown> = {};
    for (let i = 0; i < keys.length; i++) out[keys[i] as string] = values[i];
    return out;
  };
}

function compileDiscriminatedUnion(schema: Schema, seen: Map<Schema, Parse>): Parse {
  const def = schema._zod.def as Def & { discriminator?: string; options: Schema[]; unionFallback?: boolean };
  if (!schema._zod.traits.has("$ZodDiscriminatedUnion") || def.discriminator === undefined || def.unionFallback)
    throw new Unsupported("union");
  const discriminator = def.discriminator;
  const byValue = new Map<unknown, Parse>();
  for (const option of def.options) {
    const values = option._zod.propValues?.[discriminator];
    if (!values || values.size === 0 || values.has(undefined)) throw new Unsupported("discriminator values");
    const parse = compile(option, seen);
    for (const v of values) {
      if (byValue.has(v)) throw new Unsupported("duplicate discriminator value");
      byValue.set(v, parse);
    }
  }
  return (input) => {
    if (!util.isObject(input)) return ASK_ZOD;
    const option = byValue.get((input as Record<string, unknown>)[discriminator]);
    return option ? option(input) : ASK_ZOD;
  };
}
