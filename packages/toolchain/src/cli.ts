#!/usr/bin/env node
// fenceline-toolchain: builds (or finds) the Go-built tools. Progress on stderr, paths on stdout.
//   fenceline-toolchain ensure <binary|tool> ...   build what is missing, print each binary's path
//   fenceline-toolchain list                       every tool, its version and whether it is built
import { TOOLS, toolByName } from "./catalog.js";
import { toolDir } from "./cache.js";
import { ToolchainError } from "./errors.js";
import { ensureBinary, findBinary, type BinaryName } from "./index.js";

function binariesOf(arg: string): BinaryName[] {
  const tool = toolByName(arg);
  if (tool) return [...tool.binaries] as BinaryName[];
  if (TOOLS.some((t) => (t.binaries as readonly string[]).includes(arg))) return [arg as BinaryName];
  process.stderr.write(`fenceline-toolchain: unknown tool ${arg}; known: ${TOOLS.map((t) => t.name).join(", ")}\n`);
  process.exit(2);
}

const [command, ...args] = process.argv.slice(2);
if (command === "list") {
  for (const tool of TOOLS) {
    const built = tool.binaries.every((b) => findBinary(b as BinaryName) !== null);
    process.stdout.write(`${tool.name.padEnd(12)} ${tool.version.padEnd(9)} ${built ? "ready" : "not built"}  ${toolDir(tool)}\n`);
  }
} else if (command === "ensure" && args.length > 0) {
  try {
    // One at a time: the builds already use every core.
    for (const binary of args.flatMap(binariesOf)) process.stdout.write(`${await ensureBinary(binary)}\n`);
  } catch (err) {
    process.stderr.write(`fenceline-toolchain: ${err instanceof ToolchainError ? err.message : String(err)}\n`);
    process.exit(1);
  }
} else {
  process.stderr.write("usage: fenceline-toolchain ensure <tool|binary> ... | list\n");
  process.exit(2);
}
