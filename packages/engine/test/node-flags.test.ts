import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ENGINE_NODE_FLAGS, missingEngineNodeFlags } from "../src/index.js";

describe("the engine process's Node.js flags", () => {
  it("are what deploy/Dockerfile's engine image starts node with", () => {
    const dockerfile = readFileSync(join(import.meta.dirname, "..", "..", "..", "deploy", "Dockerfile"), "utf8");
    const last = dockerfile.split(/^FROM /m).at(-1)!;
    expect(last).toContain(`ENTRYPOINT ${JSON.stringify(["node", ...ENGINE_NODE_FLAGS, "/app/dist/bin.js"]).replaceAll(",", ", ")}`);
  });

  it("are missing unless given on the command line or in NODE_OPTIONS, by name (a value given explicitly wins)", () => {
    expect(missingEngineNodeFlags([], "")).toEqual([...ENGINE_NODE_FLAGS]);
    expect(missingEngineNodeFlags([], "--inspect --max-semi-space-size=8")).not.toContain("--min-semi-space-size=64");
    expect(missingEngineNodeFlags(["--max_semi_space_size=64"], "")).not.toContain("--max-semi-space-size=64");
    expect(missingEngineNodeFlags(["--expose-gc"], "--inspect")).toEqual([...ENGINE_NODE_FLAGS]);
    // The young generation's bounds go together: a minimum is never added above a given maximum.
    const others = ENGINE_NODE_FLAGS.filter((f) => !f.includes("semi-space"));
    expect(missingEngineNodeFlags(["--min-semi-space-size=16"], "")).toEqual(others);
    expect(missingEngineNodeFlags(["--max-semi-space-size=32"], "")).toEqual(others);
    // A flag and its negation are one flag: the one given wins.
    expect(missingEngineNodeFlags(["--allocation-site-pretenuring"], "")).not.toContain("--no-allocation-site-pretenuring");
    expect(missingEngineNodeFlags([], "--initial-old-space-size=512")).not.toContain("--initial-old-space-size=128");
  });
});
