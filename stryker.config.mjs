// Mutation testing of the safety-critical code (`npm run mutation`; scripts/mutation.mjs prints
// the score per file). Only the fast unit tests of these files run (vitest.mutation.config.ts).
export default {
  testRunner: "vitest",
  vitest: { configFile: "vitest.mutation.config.ts", related: false },
  plugins: ["@stryker-mutator/vitest-runner"],
  // What is mutated comes from scripts/mutation.mjs (--mutate), which finds the ranges in the code.
  mutate: [],
  coverageAnalysis: "perTest",
  concurrency: 2,
  reporters: ["clear-text", "json", "progress"],
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  // The last report is the next run's starting point: only mutants whose code or tests changed run again.
  incremental: true,
  incrementalFile: "reports/mutation/incremental.json",
  tempDirName: ".stryker-tmp",
  // Not needed by the mutated code's tests; the chart links deploy/ as a directory, which the sandbox copy cannot take.
  ignorePatterns: ["charts", "deploy", "docs"],
  cleanTempDir: "always",
  ignoreStatic: true,
  thresholds: { high: 85, low: 80, break: null },
};
