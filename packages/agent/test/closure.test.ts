import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The agent runs on every node as the safety daemon: what it carries must be the agent and what
// the agent needs, never the simulator, the visualizer, the chaos lab or the control plane.
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const FORBIDDEN = [
  "@fenceline/cli",
  "@fenceline/sim",
  "@fenceline/visualizer",
  "@fenceline/kube-lab",
  "@fenceline/engine",
  "@fenceline/detectors",
  "@fenceline/actuators",
  "@fenceline/kubernetes",
];

type Manifest = { name: string; bin?: Record<string, string>; dependencies?: Record<string, string> };

/** Every workspace package by name: its directory and package.json. */
function workspace(): Map<string, { dir: string; manifest: Manifest }> {
  const dirs = [
    ...readdirSync(join(ROOT, "packages")).map((d) => join(ROOT, "packages", d)),
    join(ROOT, "streams"),
    join(ROOT, "statecharts"),
  ];
  const out = new Map<string, { dir: string; manifest: Manifest }>();
  for (const dir of dirs) {
    const file = join(dir, "package.json");
    if (!existsSync(file)) continue;
    const manifest = JSON.parse(readFileSync(file, "utf8")) as Manifest;
    out.set(manifest.name, { dir, manifest });
  }
  return out;
}

const packages = workspace();

/** The workspace packages `name` depends on at run time (dependencies, transitively), itself excluded. */
function dependencyClosure(name: string): string[] {
  const seen = new Set<string>();
  const visit = (pkg: string) => {
    for (const dep of Object.keys(packages.get(pkg)!.manifest.dependencies ?? {})) {
      if (!packages.has(dep) || seen.has(dep)) continue;
      seen.add(dep);
      visit(dep);
    }
  };
  visit(name);
  return [...seen].sort();
}

// A static import or re-export that stays at run time (`import type` and `export type` vanish), a
// side-effect import, or a dynamic import().
const IMPORTS = [
  /(?:^|\n)\s*(?:import|export)\s+(?!type\s)[\s\S]*?\sfrom\s+["']([^"']+)["']/g,
  /(?:^|\n)\s*import\s+["']([^"']+)["']/g,
  /\bimport\(\s*["']([^"']+)["']\s*\)/g,
];

const packageOf = (specifier: string) =>
  specifier.startsWith("@") ? specifier.split("/").slice(0, 2).join("/") : specifier.split("/")[0]!;

/**
 * The module graph from `entry` (TypeScript sources; workspace packages through their `source`
 * entry): each source file reached, with the package it belongs to and the packages it imports.
 */
function moduleGraph(entry: string): { files: Map<string, string>; imports: Array<{ from: string; pkg: string; specifier: string }> } {
  const owner = (file: string) => [...packages].find(([, p]) => file.startsWith(`${p.dir}/`))![0];
  const files = new Map<string, string>();
  const imports: Array<{ from: string; pkg: string; specifier: string }> = [];
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.set(file, owner(file));
    const text = readFileSync(file, "utf8");
    for (const pattern of IMPORTS) {
      for (const match of text.matchAll(pattern)) {
        const specifier = match[1]!;
        if (specifier.startsWith(".")) {
          const target = resolve(dirname(file), specifier).replace(/\.js$/, ".ts");
          visit(existsSync(target) ? target : join(target.replace(/\.ts$/, ""), "index.ts"));
          continue;
        }
        if (specifier.startsWith("node:")) continue;
        const pkg = packageOf(specifier);
        imports.push({ from: file, pkg, specifier });
        const local = packages.get(pkg);
        if (local) visit(join(local.dir, "src", "index.ts"));
      }
    }
  };
  visit(entry);
  return { files, imports };
}

describe("fenceline-agent ships alone", () => {
  const agent = packages.get("@fenceline/agent")!;

  it("has its own bin, built from src/bin.ts", () => {
    expect(agent.manifest.bin).toEqual({ "fenceline-agent": "./dist/bin.js" });
    expect(existsSync(join(agent.dir, "src", "bin.ts"))).toBe(true);
  });

  it("its package dependencies, followed transitively, are the agent's own: no simulator, visualizer, lab or control plane", () => {
    const closure = dependencyClosure("@fenceline/agent");
    expect(closure).toEqual(["@fenceline/bus", "@fenceline/contracts", "@fenceline/streams", "@fenceline/toolchain"]);
    for (const name of FORBIDDEN) expect(closure).not.toContain(name);
  });

  it("the modules its bin loads belong to that closure, and every package they import is declared where it is imported", () => {
    const { files, imports } = moduleGraph(join(agent.dir, "src", "bin.ts"));
    const reached = new Set(files.values());
    expect([...reached].sort()).toEqual(["@fenceline/agent", ...dependencyClosure("@fenceline/agent")].sort());
    for (const name of FORBIDDEN) expect(reached.has(name)).toBe(false);
    // The graph walk really follows imports (the entry reaches the agent's NATS transport and bus).
    expect([...files.keys()].some((f) => f.endsWith("packages/agent/src/nats-transport.ts"))).toBe(true);
    const undeclared = imports.filter(({ from, pkg }) => {
      const manifest = packages.get(files.get(from)!)!.manifest;
      return !(pkg in (manifest.dependencies ?? {}));
    });
    expect(undeclared.map(({ from, specifier }) => `${from.slice(ROOT.length + 1)} imports ${specifier}`)).toEqual([]);
  });

  it("the graph walk sees what the full CLI carries (so the checks above can fail)", () => {
    const reached = new Set(moduleGraph(join(ROOT, "packages", "cli", "src", "index.ts")).files.values());
    expect(reached.has("@fenceline/sim")).toBe(true);
    expect(reached.has("@fenceline/engine")).toBe(true);
  });
});
