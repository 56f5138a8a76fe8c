import { defineConfig } from "vitest/config";

// Tests run from TypeScript sources: the "source" export condition points workspace packages
// at src/ (see each package.json), so no build is needed for unit and integration tests.
// Two projects: everything, and the tests under test/kubernetes/ that share one real
// Kubernetes control plane (started once by their globalSetup, only when one of them runs).
const KUBERNETES_TESTS = "test/kubernetes/**/*.test.ts";

export default defineConfig({
  resolve: { conditions: ["source", "node", "import", "default"] },
  ssr: { resolve: { conditions: ["source", "node", "import", "default"], externalConditions: ["source"] } },
  // The environment a globalSetup runs in (the main process) loads workspace packages from source too.
  environments: { __vitest__: { resolve: { conditions: ["source", "node", "import", "default"], externalConditions: ["source"], noExternal: [/@fenceline\//] } } },
  test: {
    exclude: ["**/node_modules/**", "**/dist/**"],
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 30_000,
    server: { deps: { inline: [/@fenceline\//] } },
    projects: [
      {
        extends: true,
        test: {
          name: "fenceline",
          include: ["packages/*/test/**/*.test.ts", "statecharts/test/**/*.test.ts", "streams/test/**/*.test.ts", "test/**/*.test.ts"],
          exclude: ["**/node_modules/**", "**/dist/**", KUBERNETES_TESTS],
        },
      },
      {
        extends: true,
        test: {
          name: "kubernetes",
          include: [KUBERNETES_TESTS],
          globalSetup: ["test/kubernetes/global-setup.ts"],
        },
      },
    ],
  },
});
