import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ensureToolDir } from "../src/build.js";
import { ToolchainError, type ToolSpec } from "../src/index.js";

// A real `go install` of a tiny module with no dependencies beyond the standard library, into a
// temporary cache: the same path every tool takes, in seconds.
const tiny: ToolSpec = { name: "tiny", version: "v0.0.0", source: "install", package: "example.invalid/none", binaries: ["none"] };

describe("ensureToolDir", () => {
  let cache: string;
  const saved = process.env.FENCELINE_CACHE;
  beforeEach(() => {
    cache = mkdtempSync(join(tmpdir(), "fenceline-toolchain-test-"));
    process.env.FENCELINE_CACHE = cache;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.FENCELINE_CACHE;
    else process.env.FENCELINE_CACHE = saved;
    rmSync(cache, { recursive: true, force: true });
  });

  it("builds a Go command into the cache once, with progress, and reuses it", { timeout: 120_000 }, async () => {
    const stringer: ToolSpec = {
      name: "stringer",
      version: "v0.52.0",
      source: "install",
      package: "golang.org/x/tools/cmd/stringer",
      binaries: ["stringer"],
    };
    const lines: string[] = [];
    const dir = await ensureToolDir(stringer, (l) => lines.push(l));
    expect(dir).toBe(join(cache, "bin", "stringer-v0.52.0"));
    expect(JSON.parse(readFileSync(join(dir, "built.json"), "utf8"))).toMatchObject({ tool: "stringer", version: "v0.52.0" });
    expect(lines.some((l) => /^built stringer v0\.52\.0 in /.test(l))).toBe(true);
    const again: string[] = [];
    expect(await ensureToolDir(stringer, (l) => again.push(l))).toBe(dir);
    expect(again).toEqual([]);
  });

  it("names the failing step and keeps go's own message", { timeout: 120_000 }, async () => {
    const err = await ensureToolDir(tiny, () => {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolchainError);
    expect((err as ToolchainError).step).toBe("install");
    expect((err as Error).message).toMatch(/tiny: install failed: `go install .*example\.invalid\/none@v0\.0\.0` exited with 1/);
  });
});
