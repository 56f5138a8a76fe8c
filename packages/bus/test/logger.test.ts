import { afterEach, describe, expect, it, vi } from "vitest";
import { createLogger } from "../src/index.js";

describe("createLogger", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("takes its level from FENCELINE_LOG_LEVEL, then defaults to info", () => {
    vi.stubEnv("FENCELINE_LOG_LEVEL", "silent");
    expect(createLogger("a").level).toBe("silent");
    vi.stubEnv("FENCELINE_LOG_LEVEL", "");
    delete process.env.FENCELINE_LOG_LEVEL;
    expect(createLogger("b").level).toBe("info");
  });

  it("prefers an explicit level and falls back to info for an unknown one", () => {
    vi.stubEnv("FENCELINE_LOG_LEVEL", "debug");
    expect(createLogger("c", { level: "warn" }).level).toBe("warn");
    expect(createLogger("d", { level: "loud" }).level).toBe("info");
  });
});
