#!/usr/bin/env node
// `fenceline-agent`: the node agent on its own, with only the agent's dependencies (no
// simulator, visualizer, chaos lab or control plane), for the DaemonSet on every node.
import { agentMain } from "./command.js";

agentMain(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`fenceline-agent: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
