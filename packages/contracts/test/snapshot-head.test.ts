import { describe, expect, it } from "vitest";
import { parseSnapshotHead } from "@fenceline/contracts";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("parseSnapshotHead", () => {
  it("reads the node, the state path and the context of a snapshot", () => {
    const context = { epoch: 2, since: 1_000, bootId: "b1", hostGroup: "default", slot: true };
    const snapshot = { node: "node-1", path: "suspect.requestingSlot", value: { suspect: "requestingSlot" }, context, lastSeq: 7 };
    expect(parseSnapshotHead(bytes(JSON.stringify(snapshot)))).toEqual({ node: "node-1", path: "suspect.requestingSlot", context });
  });

  it.each([
    ["not JSON", "{not json"],
    ["a number", "5"],
    ["null", "null"],
    ["no node", JSON.stringify({ path: "healthy", context: {} })],
    ["a path that is not a string", JSON.stringify({ node: "n", path: 3, context: {} })],
    ["no context", JSON.stringify({ node: "n", path: "healthy" })],
    ["a null context", JSON.stringify({ node: "n", path: "healthy", context: null })],
    [
      "a context without an epoch",
      JSON.stringify({ node: "n", path: "healthy", context: { since: 0, bootId: null, hostGroup: "default" } }),
    ],
    ["a boot id that is not a string", JSON.stringify({ node: "n", path: "healthy", context: { epoch: 0, bootId: 7 } })],
    [
      "an epoch that is not a number",
      JSON.stringify({ node: "n", path: "healthy", context: { epoch: "2", since: 0, bootId: null, hostGroup: "default" } }),
    ],
    [
      "a node that is not a node name",
      JSON.stringify({ node: "a b", path: "healthy", context: { epoch: 0, since: 0, bootId: null, hostGroup: "default" } }),
    ],
  ])("is null for %s", (_, text) => {
    expect(parseSnapshotHead(bytes(text))).toBeNull();
  });
});
