import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createFallbackRebootWatchdog } from "../src/watchdog/fallback-reboot-watchdog.js";
import { createLinuxWatchdog } from "../src/watchdog/linux-watchdog.js";
import { selectWatchdog } from "../src/watchdog/select-watchdog.js";
import { VirtualClock, VirtualWatchdog } from "@fenceline/testing";
import { silentLog } from "./helpers/silent-log.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "fl-watchdog-"));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe("createLinuxWatchdog (against a plain file)", () => {
  it("writes a keep-alive byte per feed and 'V' on a clean close", async () => {
    const path = join(dir, "watchdog");
    await writeFile(path, "");
    const wd = createLinuxWatchdog({ path, timeoutMs: 10_000, log: silentLog, sysfsTimeoutPath: join(dir, "none") });
    await wd.start();
    await wd.feed();
    await wd.feed();
    await wd.feed();
    expect(await readFile(path, "utf8")).toBe("aaa");
    await wd.close();
    expect(await readFile(path, "utf8")).toBe("aaaV");
    await expect(wd.feed()).rejects.toThrow(/not armed/);
    await wd.close(); // idempotent
  });

  it("refuses to create a missing device", async () => {
    const wd = createLinuxWatchdog({ path: join(dir, "missing"), timeoutMs: 10_000, log: silentLog, sysfsTimeoutPath: join(dir, "none") });
    await expect(wd.start()).rejects.toThrow(/cannot open watchdog .*ENOENT/);
  });

  it("checks the device timeout published in sysfs", async () => {
    const path = join(dir, "watchdog");
    await writeFile(path, "");
    const sysfs = join(dir, "timeout");
    await writeFile(sysfs, "60\n");
    const tooLong = createLinuxWatchdog({ path, timeoutMs: 10_000, log: silentLog, sysfsTimeoutPath: sysfs });
    await expect(tooLong.start()).rejects.toThrow(/60000ms is longer than the configured 10000ms/);
    await writeFile(sysfs, "2\n");
    const tooShort = createLinuxWatchdog({ path, timeoutMs: 10_000, log: silentLog, sysfsTimeoutPath: sysfs });
    await expect(tooShort.start()).rejects.toThrow(/too short/);
    await writeFile(sysfs, "10\n");
    const matching = createLinuxWatchdog({ path, timeoutMs: 10_000, log: silentLog, sysfsTimeoutPath: sysfs });
    await matching.start();
    await matching.close();
  });
});

describe("createFallbackRebootWatchdog", () => {
  it("runs the reboot command only when not fed in time", async () => {
    const clock = new VirtualClock(1_000_000);
    const runs: string[][] = [];
    const wd = createFallbackRebootWatchdog({
      timeoutMs: 3_000,
      rebootCommand: ["systemctl", "reboot", "-f"],
      clock,
      log: silentLog,
      runReboot: async (command) => {
        runs.push([...command]);
        return { ok: true, output: "" };
      },
    });
    await wd.start();
    for (let i = 0; i < 5; i++) {
      await clock.advanceSettling(1_000);
      await wd.feed();
    }
    expect(runs).toEqual([]);
    await clock.advanceSettling(3_000);
    expect(runs).toEqual([["systemctl", "reboot", "-f"]]);
  });

  it("is disarmed by close", async () => {
    const clock = new VirtualClock(1_000_000);
    let runs = 0;
    const wd = createFallbackRebootWatchdog({
      timeoutMs: 1_000,
      rebootCommand: ["true"],
      clock,
      log: silentLog,
      runReboot: async () => ({ ok: true, output: String(++runs) }),
    });
    await wd.start();
    await wd.close();
    await clock.advanceSettling(10_000);
    expect(runs).toBe(0);
  });
});

describe("selectWatchdog", () => {
  it("picks the device when it exists, else the fallback, else fails", async () => {
    const clock = new VirtualClock(1_000_000);
    const path = join(dir, "watchdog");
    await writeFile(path, "");
    const common = { timeoutMs: 10_000, clock, log: silentLog, fallbackRebootCommand: ["systemctl", "reboot", "-f"] };
    expect((await selectWatchdog({ ...common, path })).kind).toBe("device");
    expect((await selectWatchdog({ ...common, path: join(dir, "missing") })).kind).toBe("fallback");
    await expect(selectWatchdog({ ...common, path: join(dir, "missing"), fallbackRebootCommand: null })).rejects.toThrow(
      /no watchdog device/,
    );
  });
});

describe("VirtualWatchdog, as the agent uses it", () => {
  it("expires when not fed, and magic close disarms it", async () => {
    const clock = new VirtualClock(1_000_000);
    const expired: number[] = [];
    const wd = new VirtualWatchdog({ clock, timeoutMs: 1_000, onFire: (at) => expired.push(at) });
    await wd.start();
    await clock.advanceSettling(900);
    await wd.feed();
    await clock.advanceSettling(900);
    expect(expired).toEqual([]);
    await clock.advanceSettling(200);
    expect(expired).toEqual([clock.now() - 100]);
    const other = new VirtualWatchdog({ clock, timeoutMs: 1_000 });
    await other.start();
    await other.close();
    await clock.advanceSettling(5_000);
    expect(other.firedAt).toBeUndefined();
    expect(other.state === "closed").toBe(true);
  });
});
