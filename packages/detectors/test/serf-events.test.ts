import { NodeEvent } from "@fenceline/contracts";
import { describe, expect, it } from "vitest";
import { parseSerfMembers, SERF_ID_WINDOW_MS, translateSerfEvent } from "../src/serf-events.js";

const NOW = 1_800_000_002_000;
const lines = "node-a\t10.0.0.1\tweb\trole=web,dc=x\nnode-b\t10.0.0.2\t\t\n";

describe("serf member lines", () => {
  it("parses name, address, role and tags; skips blank lines; keeps the raw line", () => {
    const { members, rejected } = parseSerfMembers(`${lines}\n\nlabel-1\t10.0.0.3\t\tfl-node=node-c,serial=x\\ty`);
    expect(rejected).toEqual([]);
    expect(members.map((m) => [m.name, m.address, m.role, m.tags])).toEqual([
      ["node-a", "10.0.0.1", "web", { role: "web", dc: "x" }],
      ["node-b", "10.0.0.2", "", {}],
      ["label-1", "10.0.0.3", "", { "fl-node": "node-c", serial: "x\ty" }],
    ]);
    expect(members[0]!.line).toBe("node-a\t10.0.0.1\tweb\trole=web,dc=x");
  });

  it("rejects a line without a member name", () => {
    expect(parseSerfMembers("\t10.0.0.9\t\t\n").rejected).toEqual([{ line: "\t10.0.0.9\t\t", error: "no member name" }]);
  });
});

describe("serf events → node events", () => {
  const { members } = parseSerfMembers(lines);
  const translate = (event: string | undefined, extra: { nodeTag?: string } = {}) =>
    translateSerfEvent({ event, members, now: NOW, self: "node-z", ...extra });

  it("member-failed → signal.unhealthy serf since now, one per member, valid events", () => {
    const { events, rejected, ignored } = translate("member-failed");
    expect(ignored).toBeUndefined();
    expect(rejected).toEqual([]);
    expect(events.map((e) => e.event)).toEqual([
      {
        v: 1,
        id: `serf:member-failed:node-a:${Math.floor(NOW / SERF_ID_WINDOW_MS)}`,
        node: "node-a",
        at: NOW,
        source: "serf:node-z",
        type: "signal.unhealthy",
        data: { signal: "serf", since: NOW, detail: "serf member-failed (10.0.0.1), seen by node-z" },
      },
      expect.objectContaining({ node: "node-b", type: "signal.unhealthy" }),
    ]);
    for (const { event } of events) expect(NodeEvent.safeParse(event).success).toBe(true);
  });

  it.each(["member-join", "member-update", "member-leave"])("%s → signal.healthy serf", (serfEvent) => {
    const { events } = translate(serfEvent);
    expect(events.map((e) => [e.event.node, e.event.type, e.event.data])).toEqual([
      ["node-a", "signal.healthy", { signal: "serf" }],
      ["node-b", "signal.healthy", { signal: "serf" }],
    ]);
    for (const { event } of events) expect(NodeEvent.safeParse(event).success).toBe(true);
  });

  it.each([["member-reap"], ["user"], ["query"], ["something-new"], [undefined]])("%s is ignored with a reason", (serfEvent) => {
    const result = translate(serfEvent);
    expect(result.events).toEqual([]);
    expect(result.ignored).toMatch(/./);
  });

  it("ids are deterministic: the same event from two observers in one window has one id; the next window another", () => {
    const a = translateSerfEvent({ event: "member-failed", members, now: NOW, self: "x" }).events[0]!.event;
    const b = translateSerfEvent({ event: "member-failed", members, now: NOW + 1_000, self: "y" }).events[0]!.event;
    const c = translateSerfEvent({ event: "member-failed", members, now: NOW + SERF_ID_WINDOW_MS, self: "y" }).events[0]!.event;
    const join = translateSerfEvent({ event: "member-join", members, now: NOW, self: "x" }).events[0]!.event;
    expect(a.id).toBe(b.id);
    expect(c.id).not.toBe(a.id);
    expect(join.id).not.toBe(a.id);
  });

  it("rejects members whose name is not a node name; --node-tag takes the name from a tag", () => {
    const odd = parseSerfMembers("Bad_Name\t10.0.0.5\t\t\nlabel-7\t10.0.0.7\t\tfl-node=node-7\nnode-8\t10.0.0.8\t\tfl-node=NOPE\n").members;
    const result = translateSerfEvent({ event: "member-failed", members: odd, now: NOW, nodeTag: "fl-node" });
    expect(result.events.map((e) => e.event.node)).toEqual(["node-7"]);
    expect(result.rejected).toEqual([
      { line: "Bad_Name\t10.0.0.5\t\t", error: expect.stringMatching(/^member name "Bad_Name" is not a node name/) },
      { line: "node-8\t10.0.0.8\t\tfl-node=NOPE", error: expect.stringMatching(/^tag fl-node "NOPE" is not a node name/) },
    ]);
  });
});
