import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MIN_NATS_SERVER_VERSION } from "@fenceline/toolchain";
import { startOldNatsServer, type OldNatsServer } from "../support/old-nats-server.js";
import { runCli } from "./cli.js";

/** Every process checks the server's version when it connects: the CLI as a user runs it. */
describe("a nats-server older than Fenceline supports", () => {
  let old: OldNatsServer;
  beforeAll(async () => {
    old = await startOldNatsServer("2.9.10");
  });
  afterAll(async () => {
    await old?.stop();
  });

  for (const command of [["nodes"], ["up"], ["audit"]]) {
    it(`fenceline ${command.join(" ")} stops with one line naming both versions`, async () => {
      const r = await runCli([...command, "--server", old.url], { timeoutMs: 30_000 });
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split("\n").at(-1)).toBe(
        `fenceline ${command[0]}: nats-server 2.9.10 at ${old.url} is too old: Fenceline needs nats-server ${MIN_NATS_SERVER_VERSION} or newer (see the README)`,
      );
    });
  }
});
