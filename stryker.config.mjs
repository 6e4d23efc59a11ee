/**
 * Mutation testing of the pure code (`npm run mutate`): every service's domain/ folder and the event
 * store's decider. A mutant that survives is behaviour no unit test pins down. Folders, not files, so
 * that a domain split into more files stays covered. Options: https://stryker-mutator.io/docs/stryker-js/configuration
 */
export default {
  mutate: ["services/*/src/domain/**/*.ts", "libs/eventstore/src/decider.ts"],
  testRunner: "vitest",
  vitest: { configFile: "vitest.mutate.config.ts", related: true },
  coverageAnalysis: "perTest",
  reporters: ["clear-text", "progress", "html", "json"],
  clearTextReporter: { allowColor: false, reportScoreTable: true },
  htmlReporter: { fileName: "reports/mutation/index.html" },
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  // `npm run mutate -- --incremental` tests again only the mutants whose code or tests changed.
  incrementalFile: "reports/mutation/incremental.json",
  tempDirName: ".stryker-tmp",
  // Each domain folder is held to 90 %; the run fails if the whole falls below it.
  thresholds: { high: 95, low: 90, break: 90 },
  // The machine's cores are shared: two test processes at most, and a slow run is not taken for a
  // mutant's endless loop (none of the domain code loops on anything but a finite list).
  concurrency: 2,
  timeoutMS: 60_000,
};
