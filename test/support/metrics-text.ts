/**
 * Reads the Prometheus text exposition format: the samples keyed `name{a="x",b="y"}` with their
 * labels sorted by name (so a test does not depend on the order a client writes them in), and
 * each metric family's TYPE and HELP.
 */
export type Exposition = {
  samples: Map<string, number>;
  families: Map<string, { type: string; help: string }>;
};

export function parseExposition(text: string): Exposition {
  const samples = new Map<string, number>();
  const families = new Map<string, { type: string; help: string }>();
  for (const line of text.split("\n")) {
    if (!line) continue;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      const f = families.get(meta[2]!) ?? { type: "untyped", help: "" };
      if (meta[1] === "HELP") f.help = meta[3]!;
      else f.type = meta[3]!;
      families.set(meta[2]!, f);
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels = [...(m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}="${l[2]}"`).sort();
    samples.set(labels.length ? `${m[1]}{${labels.join(",")}}` : m[1]!, Number(m[3]));
  }
  return { samples, families };
}
