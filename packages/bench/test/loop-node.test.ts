import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UsageError } from "@fenceline/command-line";
import { describeLoopNode, resolveLoopNode } from "../src/loop-node.js";

describe("bench throughput --node", () => {
  it("current: the node running the benchmark", async () => {
    expect(await resolveLoopNode("current", "usage")).toEqual({ path: process.execPath, version: process.version, source: "current" });
  });

  it("a path: the binary there, with the version it reports", async () => {
    const node = await resolveLoopNode(process.execPath, "usage");
    expect(node).toEqual({ path: process.execPath, version: process.version, source: "path" });
    expect(describeLoopNode(node)).toBe(`${process.version}, ${process.execPath}`);
  });

  it("refuses a path that does not exist, or that is no node binary, naming it", async () => {
    await expect(resolveLoopNode("/nonexistent/node", "usage")).rejects.toThrow(
      new UsageError("--node must be image, current or the path of a node binary; /nonexistent/node does not exist\n\nusage"),
    );
    const dir = mkdtempSync(join(tmpdir(), "fl-loop-node-"));
    try {
      const fake = join(dir, "node");
      writeFileSync(fake, "#!/bin/sh\necho 'not node'\necho more\n");
      chmodSync(fake, 0o755);
      await expect(resolveLoopNode(fake, "usage")).rejects.toThrow(
        `--node ${fake} is not a node binary: \`${fake} --version\` printed "not node"`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
