/**
 * Kubernetes label and field selectors, as the API server parses them (the subset clients use:
 * `k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)` for labels; `path=v`,
 * `path==v`, `path!=v` for fields).
 */

export class SelectorError extends Error {
  override readonly name = "SelectorError";
}

type Requirement =
  | { op: "exists" | "!exists"; key: string }
  | { op: "=" | "!="; key: string; value: string }
  | { op: "in" | "notin"; key: string; values: string[] };

export type Matcher = (labels: Record<string, string>) => boolean;

/** Splits on commas outside parentheses. */
function splitTop(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = "";
  for (const ch of text) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      parts.push(current);
      current = "";
    } else current += ch;
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

const KEY = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?\/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$/;

function checkKey(key: string, whole: string): string {
  if (!KEY.test(key)) throw new SelectorError(`invalid label key "${key}" in selector "${whole}"`);
  return key;
}

export function parseLabelSelector(selector: string | undefined | null): Matcher {
  if (!selector || selector.trim() === "") return () => true;
  const requirements: Requirement[] = splitTop(selector).map((part) => {
    let m = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(part);
    if (m) {
      const values = m[3]!
        .split(",")
        .map((v) => v.trim())
        .filter((v) => v.length > 0);
      return { op: m[2] as "in" | "notin", key: checkKey(m[1]!, selector), values };
    }
    m = /^([^!=\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part);
    if (m) return { op: m[2] === "!=" ? "!=" : "=", key: checkKey(m[1]!, selector), value: m[3]! };
    m = /^!\s*(\S+)$/.exec(part);
    if (m) return { op: "!exists", key: checkKey(m[1]!, selector) };
    if (/^\S+$/.test(part)) return { op: "exists", key: checkKey(part, selector) };
    throw new SelectorError(`unable to parse requirement "${part}" in label selector "${selector}"`);
  });
  return (labels) =>
    requirements.every((r) => {
      const has = Object.hasOwn(labels, r.key);
      const value = labels[r.key];
      switch (r.op) {
        case "exists":
          return has;
        case "!exists":
          return !has;
        case "=":
          return has && value === r.value;
        case "!=":
          return !has || value !== r.value;
        case "in":
          return has && r.values.includes(value!);
        case "notin":
          return !has || !r.values.includes(value!);
      }
    });
}

export type FieldGetter = (field: string) => string | undefined;

/**
 * Parses a field selector against the fields a resource supports; an unsupported field is an
 * error, as on a real API server ("field label not supported").
 */
export function parseFieldSelector(
  selector: string | undefined | null,
  supported: readonly string[],
  resource: string,
): (get: FieldGetter) => boolean {
  if (!selector || selector.trim() === "") return () => true;
  const terms = splitTop(selector).map((part) => {
    const m = /^([^!=]+?)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (!m) throw new SelectorError(`invalid field selector "${selector}"`);
    const field = m[1]!.trim();
    if (!supported.includes(field))
      throw new SelectorError(`field label not supported: ${field} (${resource} supports ${supported.join(", ")})`);
    return { field, negate: m[2] === "!=", value: m[3]!.trim() };
  });
  return (get) => terms.every((t) => ((get(t.field) ?? "") === t.value) !== t.negate);
}
