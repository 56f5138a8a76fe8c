import { defineConfig } from "vitest/config";

// Tests run from TypeScript sources: the "source" export condition points workspace packages
// at src/ (see each package.json), so no build is needed for unit and integration tests.
export default defineConfig({
  resolve: { conditions: ["source", "node", "import", "default"] },
  ssr: { resolve: { conditions: ["source", "node", "import", "default"], externalConditions: ["source"] } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "statecharts/test/**/*.test.ts", "streams/test/**/*.test.ts", "test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/dist/**"],
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 30_000,
    server: { deps: { inline: [/@fenceline\//] } },
  },
});
