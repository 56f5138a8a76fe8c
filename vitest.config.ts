import { defineConfig } from "vitest/config";

// Tests run from TypeScript sources: the "source" export condition points workspace packages
// at src/ (see each package.json), so no build is needed for unit and integration tests.
// Five projects, the test tiers (`node scripts/test.mjs --project <tier>`; turbo runs and caches
// each as `test:<tier>`, see turbo.json). They partition the test files by where they live:
// - unit: every package's own tests that need no server;
// - nats: package tests named *.nats.test.ts (they start a nats-server) and test/ folders of
//   integration tests against a real nats-server;
// - kubernetes: test/kubernetes/, sharing one real control plane (started once by their
//   globalSetup, only when one of them runs);
// - chaos: the chaos lab (the simulator's seeds) and the chaos CLI;
// - e2e: every other folder of test/ (a new folder lands here unless it is listed above).
const PACKAGE_TESTS = ["packages/*/test/**/*.test.ts", "statecharts/test/**/*.test.ts", "streams/test/**/*.test.ts"];
const PACKAGE_NATS_TESTS = "**/*.nats.test.ts";
const NATS_TESTS = ["engine", "replay", "scale", "security", "streams"].map((dir) => `test/${dir}/**/*.test.ts`);
const KUBERNETES_TESTS = "test/kubernetes/**/*.test.ts";
// Files of the kubernetes tier at once. On a 2-core machine vitest's default is one, but these
// files spend most of their time waiting on the control plane's own clocks (the node monitor's
// grace period, tolerations), each in a fleet, zone and namespace of its own: three at once take
// the tier from ~310 s to ~125 s. The other tiers keep the default: their agents' watchdogs and
// leases run on second-scale timings that two busy workers on two cores could starve.
const KUBERNETES_WORKERS = 3;
const CHAOS_TESTS = ["test/chaos/**/*.test.ts", "packages/sim/test/lab/**/*.test.ts"];
const IGNORED = ["**/node_modules/**", "**/dist/**", "**/.stryker-tmp/**"];

export default defineConfig({
  resolve: { conditions: ["source", "node", "import", "default"] },
  ssr: { resolve: { conditions: ["source", "node", "import", "default"], externalConditions: ["source"] } },
  // The environment a globalSetup runs in (the main process) loads workspace packages from source too.
  environments: {
    __vitest__: {
      resolve: { conditions: ["source", "node", "import", "default"], externalConditions: ["source"], noExternal: [/@fenceline\//] },
    },
  },
  test: {
    exclude: ["**/node_modules/**", "**/dist/**"],
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 30_000,
    server: { deps: { inline: [/@fenceline\//] } },
    projects: [
      { extends: true, test: { name: "unit", include: PACKAGE_TESTS, exclude: [...IGNORED, PACKAGE_NATS_TESTS, ...CHAOS_TESTS] } },
      { extends: true, test: { name: "nats", include: [PACKAGE_NATS_TESTS, ...NATS_TESTS], exclude: IGNORED } },
      {
        extends: true,
        test: {
          name: "kubernetes",
          include: [KUBERNETES_TESTS],
          exclude: IGNORED,
          globalSetup: ["test/kubernetes/global-setup.ts"],
          maxWorkers: KUBERNETES_WORKERS,
          // A worker count of its own needs a group of its own: in a run of every project, this
          // one runs after the others, alone.
          sequence: { groupOrder: 1 },
        },
      },
      { extends: true, test: { name: "chaos", include: CHAOS_TESTS, exclude: IGNORED } },
      {
        extends: true,
        test: { name: "e2e", include: ["test/**/*.test.ts"], exclude: [...IGNORED, ...NATS_TESTS, KUBERNETES_TESTS, ...CHAOS_TESTS] },
      },
    ],
  },
});
