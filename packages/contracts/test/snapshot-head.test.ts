import { describe, expect, it } from "vitest";
import { parseSnapshotHead } from "@fenceline/contracts";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("parseSnapshotHead", () => {
  it("reads the node, the state path and the context of a snapshot", () => {
    const snapshot = { node: "node-1", path: "suspect.requestingSlot", value: { suspect: "requestingSlot" }, context: { epoch: 2, bootId: "b1" }, lastSeq: 7 };
    expect(parseSnapshotHead(bytes(JSON.stringify(snapshot)))).toEqual({ node: "node-1", path: "suspect.requestingSlot", context: { epoch: 2, bootId: "b1" } });
  });

  it.each([
    ["not JSON", "{not json"],
    ["a number", "5"],
    ["null", "null"],
    ["no node", JSON.stringify({ path: "healthy", context: {} })],
    ["a path that is not a string", JSON.stringify({ node: "n", path: 3, context: {} })],
    ["no context", JSON.stringify({ node: "n", path: "healthy" })],
    ["a null context", JSON.stringify({ node: "n", path: "healthy", context: null })],
  ])("is null for %s", (_, text) => {
    expect(parseSnapshotHead(bytes(text))).toBeNull();
  });
});
