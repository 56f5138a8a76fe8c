import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { computeServiceChecksums } from "../src/checksums.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "fl-checksums-"));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe("computeServiceChecksums", () => {
  it("gives one sha256 per service, in sorted order, stable across runs", async () => {
    await writeFile(join(dir, "a.conf"), "alpha");
    const services = { zeta: { files: [join(dir, "a.conf")] }, alpha: { commands: ["echo hi"] } };
    const first = await computeServiceChecksums({ services });
    expect(Object.keys(first)).toEqual(["alpha", "zeta"]);
    for (const digest of Object.values(first)) expect(digest).toMatch(/^[0-9a-f]{64}$/);
    expect(await computeServiceChecksums({ services })).toEqual(first);
  });

  it("changes when a file changes, and only for the services that read it", async () => {
    const shared = join(dir, "shared.conf");
    await writeFile(shared, "v1");
    await writeFile(join(dir, "other.conf"), "x");
    const services = { web: { files: [shared] }, db: { files: [join(dir, "other.conf")] } };
    const before = await computeServiceChecksums({ services });
    await writeFile(shared, "v2");
    const after = await computeServiceChecksums({ services });
    expect(after.web).not.toBe(before.web);
    expect(after.db).toBe(before.db);
  });

  it("does not depend on the order files are listed in", async () => {
    await writeFile(join(dir, "1"), "one");
    await writeFile(join(dir, "2"), "two");
    const a = await computeServiceChecksums({ services: { s: { files: [join(dir, "1"), join(dir, "2")] } } });
    const b = await computeServiceChecksums({ services: { s: { files: [join(dir, "2"), join(dir, "1")] } } });
    expect(a).toEqual(b);
  });

  it("hashes a missing file as a marker distinct from an empty one, without failing", async () => {
    const path = join(dir, "maybe.conf");
    const missing = await computeServiceChecksums({ services: { s: { files: [path] } } });
    await writeFile(path, "");
    const empty = await computeServiceChecksums({ services: { s: { files: [path] } } });
    expect(missing.s).toMatch(/^[0-9a-f]{64}$/);
    expect(empty.s).not.toBe(missing.s);
  });

  it("includes command output and exit status; a timed-out command is a marker", async () => {
    const one = await computeServiceChecksums({ services: { s: { commands: ["echo one"] } } });
    const two = await computeServiceChecksums({ services: { s: { commands: ["echo two"] } } });
    const failing = await computeServiceChecksums({ services: { s: { commands: ["echo one; exit 3"] } } });
    expect(new Set([one.s, two.s, failing.s]).size).toBe(3);
    const started = Date.now();
    const slow = await computeServiceChecksums({ services: { s: { commands: ["sleep 5"] } }, commandTimeoutMs: 100 });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(await computeServiceChecksums({ services: { s: { commands: ["sleep 5"] } }, commandTimeoutMs: 100 })).toEqual(slow);
  });
});
