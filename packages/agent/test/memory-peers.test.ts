import { describe, expect, it } from "vitest";
import { createMemoryPeerNetwork } from "../src/memory-peers.js";
import { VirtualClock } from "@fenceline/testing";

describe("memory peer network", () => {
  it("answers over links that work both ways, and times out otherwise (in virtual time)", async () => {
    const clock = new VirtualClock(1_000_000);
    const down = new Set<string>();
    const network = createMemoryPeerNetwork({ clock, canReach: (from, to) => !down.has(`${from}>${to}`) });
    network.transportFor("b").serve(async () => ({ node: "b", controlPlane: "reachable", verdict: "healthy" }));
    const a = network.transportFor("a");
    expect(await a.ask({ node: "b" }, { from: "a", about: "a" }, 1_000)).toMatchObject({ node: "b" });

    down.add("b>a"); // the question arrives, the answer cannot come back
    const pending = a.ask({ node: "b" }, { from: "a", about: "a" }, 1_000);
    await clock.advanceSettling(999);
    let settled = false;
    void pending.then(() => (settled = true));
    await clock.advanceSettling(0);
    expect(settled).toBe(false);
    await clock.advanceSettling(1);
    expect(await pending).toBeUndefined();
  });

  it("a closed transport stops serving, but not a newer one for the same node", async () => {
    const clock = new VirtualClock(1_000_000);
    const network = createMemoryPeerNetwork({ clock });
    const old = network.transportFor("b");
    old.serve(async () => ({ node: "b", controlPlane: "lost" }));
    const restarted = network.transportFor("b");
    restarted.serve(async () => ({ node: "b", controlPlane: "reachable" }));
    await old.close();
    expect(await network.transportFor("a").ask({ node: "b" }, { from: "a", about: "a" }, 10)).toMatchObject({ controlPlane: "reachable" });
  });
});
