import { defineConfig } from "vitest/config";

// The fast unit tests of the safety-critical code that `npm run mutation` mutates (see
// stryker.config.mjs): only these run against each mutant, so a run takes minutes on 2 cores.
export default defineConfig({
  resolve: { conditions: ["source", "node", "import", "default"] },
  ssr: { resolve: { conditions: ["source", "node", "import", "default"], externalConditions: ["source"] } },
  test: {
    include: [
      "statecharts/test/transitions.test.ts",
      "statecharts/test/outage.test.ts",
      "packages/agent/test/self-fence-decision.test.ts",
      "packages/actuators/test/fleet-guard.test.ts",
      "packages/contracts/test/policy.test.ts",
      "packages/contracts/test/membership.test.ts",
    ],
    pool: "forks",
    server: { deps: { inline: [/@fenceline\//] } },
  },
});
