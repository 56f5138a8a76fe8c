import { describe, expect, it } from "vitest";
import { FAULT_KINDS_BEFORE_NATS_LOSS, runSeed } from "../../src/index.js";

describe("a node whose network flaps while it is partitioned off (seed 3490)", () => {
  // node-5 is cut off at 18.549 s for 22.5 s; its network also flaps from 19.103 s. The end of the
  // first flap (19.997 s) used to make its kubelet reachable again although the partition held:
  // reset by its own watchdog at 21 s and booted at 22.026 s, it restarted queue-1 without any
  // way to the API server, and the engine's out-of-service taint at 22.6 s (fencing confirmed by
  // the safe time) met that copy. A real kubelet cannot start a regular pod after a reboot before
  // it reaches the API server: regular pods are not kept on the node.
  it("seed 3490: the rebooted node starts nothing while cut off; the replica moves without a violation", async () => {
    const r = await runSeed(3490, { keep: true, kinds: FAULT_KINDS_BEFORE_NATS_LOSS, growth: false });
    expect(r.failures).toEqual([]);
    const node5 = r.trail!.filter((l) => l.node === "node-5");
    const partition = r.faults.find((f) => f.kind === "partition-minority" && f.nodes.includes("node-5"))!;
    expect(r.faults.some((f) => f.kind === "flapping" && f.nodes.includes("node-5"))).toBe(true);
    // It booted again while the partition held, and ran no container until the partition healed.
    const bootsInPartition = node5.filter((l) => l.what.startsWith("[machine] booted") && l.at > partition.at && l.at < partition.healAt);
    expect(bootsInPartition.length).toBeGreaterThan(0);
    const startedInPartition = node5.filter(
      (l) => l.what.includes("[cluster] pod") && l.what.includes("running on node-5") && l.at > partition.at && l.at < partition.healAt,
    );
    expect(startedInPartition).toEqual([]);
    // Its kubelet never counted as reachable during the partition, flaps or not.
    expect(node5.filter((l) => l.what.includes("reachable again") && l.at > partition.at && l.at < partition.healAt)).toEqual([]);
    // The engine did confirm fencing by the safe time and moved the replica (the scenario is still exercised).
    expect(
      node5.some((l) => l.what.includes("taint node.kubernetes.io/out-of-service") && l.at > partition.at && l.at < partition.healAt),
    ).toBe(true);
    expect(r.convergedAtMs).not.toBeNull();
  });
});
