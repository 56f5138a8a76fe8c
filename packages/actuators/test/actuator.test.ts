import { CommandResult, FENCING_TAINT } from "@fenceline/contracts";
import { describe, expect, it, vi } from "vitest";
import { VirtualClock } from "@fenceline/testing";
import { createActuator, type Handlers } from "../src/actuator.js";
import { command, resultOf } from "./helpers.js";

function setup(handlers: Handlers, now = 10_000) {
  const clock = new VirtualClock(now);
  const actuator = createActuator({ name: "cluster", handlers, clock });
  return { clock, actuator };
}

const ok: Handlers = { "taint.add": async () => ({ ok: true, output: "done" }) };
const taint = (fields: Parameters<typeof command>[2] = {}) => command("taint.add", { taint: FENCING_TAINT }, { now: 10_000, ...fields });

describe("actuator core", () => {
  it("runs the handler and reports a command.result whose id derives from the command id", async () => {
    const handler = vi.fn(async () => ({ ok: true, output: "taint added" }));
    const { actuator, clock } = setup({ "taint.add": handler });
    const c = taint({ id: "cmd-42", epoch: 3 });
    const result = resultOf(await actuator.execute(c));
    expect(handler).toHaveBeenCalledOnce();
    expect(result.id).toBe("result:cmd-42");
    expect(result).toMatchObject({ node: "n1", at: clock.now(), source: "actuator:cluster" });
    // The taint is echoed, so the machine can tell which taint command a result answers.
    expect(result.data).toMatchObject({
      commandId: "cmd-42",
      kind: "taint.add",
      epoch: 3,
      ok: true,
      output: "taint added",
      facts: { taint: FENCING_TAINT.key },
    });
    expect(result.data.reason).toBeUndefined();
    expect(CommandResult.parse(result)).toEqual(result);
    expect(actuator.knownEpoch("n1")).toBe(3);
  });

  it("refuses a command whose epoch is older than one it has seen", async () => {
    const handler = vi.fn(async () => ({ ok: true }));
    const { actuator } = setup({ "taint.add": handler });
    resultOf(await actuator.execute(taint({ epoch: 5 })));
    const stale = resultOf(await actuator.execute(taint({ epoch: 4 })));
    expect(stale.data.ok).toBe(false);
    expect(stale.data.reason).toContain("stale epoch");
    expect(stale.data.reason).toContain("4 < 5");
    expect(handler).toHaveBeenCalledTimes(1);
    // The same epoch and a newer one are fine; epochs are per node.
    expect(resultOf(await actuator.execute(taint({ epoch: 5 }))).data.ok).toBe(true);
    expect(resultOf(await actuator.execute(taint({ epoch: 0, node: "n2" }))).data.ok).toBe(true);
  });

  it("learns an epoch through observeEpoch and never moves it backwards", async () => {
    const handler = vi.fn(async () => ({ ok: true }));
    const { actuator } = setup({ "taint.add": handler });
    actuator.observeEpoch("n1", 7);
    actuator.observeEpoch("n1", 2);
    expect(actuator.knownEpoch("n1")).toBe(7);
    expect(actuator.knownEpoch("n2")).toBe(0);
    const stale = resultOf(await actuator.execute(taint({ epoch: 6 })));
    expect(stale.data).toMatchObject({ ok: false, epoch: 6 });
    expect(stale.data.reason).toMatch(/stale epoch 6 < 7/);
    expect(handler).not.toHaveBeenCalled();
    expect(resultOf(await actuator.execute(taint({ epoch: 8 }))).data.ok).toBe(true);
    expect(actuator.knownEpoch("n1")).toBe(8);
  });

  it("refuses a command whose deadline has passed, without running the handler", async () => {
    const handler = vi.fn(async () => ({ ok: true }));
    const { actuator, clock } = setup({ "taint.add": handler });
    const c = taint({ deadline: 10_500 });
    clock.advance(1_000);
    const result = resultOf(await actuator.execute(c));
    expect(result.data.ok).toBe(false);
    expect(result.data.reason).toMatch(/deadline passed 500 ms ago/);
    expect(handler).not.toHaveBeenCalled();
  });

  it("reports a throwing handler as ok:false with its message", async () => {
    const { actuator } = setup({
      "taint.add": async () => {
        throw new Error("API server said 503");
      },
    });
    const result = resultOf(await actuator.execute(taint()));
    expect(result.data).toMatchObject({ ok: false, reason: "API server said 503" });
  });

  it("reports a command it has no handler for as ok:false", async () => {
    const { actuator } = setup(ok);
    const c = command("pods.delete", {}, { now: 10_000 });
    const result = resultOf(await actuator.execute(c));
    expect(result.data.ok).toBe(false);
    expect(result.data.reason).toBe("actuator cluster cannot carry out pods.delete");
  });

  it("turns a retry outcome into a retry before the deadline and into a result after it", async () => {
    let clockRef: VirtualClock | undefined;
    const { actuator, clock } = setup({
      "watchdog.stop": async () => {
        clockRef?.advance(100); // the handler itself takes time
        return { ok: false, retry: true, reason: "agent unreachable: timeout" };
      },
    });
    clockRef = clock;
    const c = command("watchdog.stop", { reason: "fencing" }, { now: 10_000, deadline: 10_250 });
    expect(await actuator.execute(c)).toEqual({ kind: "retry", reason: "agent unreachable: timeout" });
    // Second try: ends at 10 200, still before the deadline.
    expect((await actuator.execute(c)).kind).toBe("retry");
    // Third try starts before the deadline but ends after it: a result, not another retry.
    const result = resultOf(await actuator.execute(c));
    expect(result.id).toBe(`result:${c.id}`);
    expect(result.data).toMatchObject({ ok: false, reason: "agent unreachable: timeout" });
  });

  it("cuts long output and reasons to what the event schema allows", async () => {
    const { actuator } = setup({
      "taint.add": async () => ({ ok: false, reason: "r".repeat(5_000), output: "x".repeat(100_000) + "END" }),
    });
    const result = resultOf(await actuator.execute(taint()));
    expect(result.data.output!.endsWith("END")).toBe(true);
    expect(() => CommandResult.parse(result)).not.toThrow();
  });
});
