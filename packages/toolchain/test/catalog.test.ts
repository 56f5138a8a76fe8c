import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { GO_MODULES_DIR, IMAGE_NODE_VERSION, TOOLS, cacheRoot, toolDir, versionAtLeast } from "../src/index.js";

describe("the tool catalog", () => {
  it("pins each in-repo Go module to the version the catalog names", () => {
    for (const tool of TOOLS) {
      if (tool.source !== "module") continue;
      const goMod = readFileSync(join(GO_MODULES_DIR, tool.module, "go.mod"), "utf8");
      // kubernetes v1.N.x pairs with staging modules v0.N.x; etcd's server module is the version itself.
      const required = tool.name === "kubernetes" ? `k8s.io/kubernetes ${tool.version}` : `go.etcd.io/etcd/server/v3 ${tool.version}`;
      expect(goMod, `tools/${tool.module}/go.mod`).toContain(required);
      if (tool.name === "kubernetes") {
        const staging = `v0.${tool.version.split(".").slice(1).join(".")}`;
        const replaces = [...goMod.matchAll(/^\s+(k8s\.io\/\S+) => (\S+) (\S+)$/gm)];
        expect(replaces.length).toBeGreaterThanOrEqual(30);
        for (const [, from, to, version] of replaces) {
          expect(to).toBe(from);
          expect(version, from).toBe(staging);
        }
      }
    }
  });

  it("names every binary once", () => {
    const binaries = TOOLS.flatMap((t) => [...t.binaries]);
    expect(new Set(binaries).size).toBe(binaries.length);
  });

  it("keeps its cache outside the repository, under FENCELINE_CACHE or XDG_CACHE_HOME", () => {
    expect(cacheRoot({ FENCELINE_CACHE: "/c" })).toBe("/c");
    expect(cacheRoot({ XDG_CACHE_HOME: "/x" })).toBe("/x/fenceline");
    expect(toolDir(TOOLS[0], { FENCELINE_CACHE: "/c" })).toBe(`/c/bin/${TOOLS[0].name}-${TOOLS[0].version}`);
  });
});

describe("the images' Node.js", () => {
  it("is the line the tests run the product on (IMAGE_NODE_VERSION): every stage of deploy/Dockerfile", () => {
    const dockerfile = readFileSync(join(GO_MODULES_DIR, "..", "deploy", "Dockerfile"), "utf8");
    const bases = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(bases).toHaveLength(3);
    for (const base of bases) expect(base).toBe(`node:${IMAGE_NODE_VERSION.split(".")[0]}-bookworm-slim`);
  });
});

describe("versionAtLeast", () => {
  it("compares dotted versions numerically, with or without a v", () => {
    expect(versionAtLeast("2.15.3", "2.12.0")).toBe(true);
    expect(versionAtLeast("v2.12.0", "2.12.0")).toBe(true);
    expect(versionAtLeast("2.9.10", "2.12.0")).toBe(false);
    expect(versionAtLeast("2.10.0", "2.9.10")).toBe(true);
    expect(versionAtLeast("3.0.0-beta.1", "2.12.0")).toBe(true);
  });
});
