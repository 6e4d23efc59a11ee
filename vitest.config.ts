import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: [
      "libs/*/test/**/*.test.ts",
      "services/*/test/**/*.test.ts",
      "e2e/**/*.test.ts",
      "deploy/test/**/*.test.ts",
    ],
    globalSetup: ["libs/testkit/src/global-setup.ts"],
    reporters: ["default", "./libs/testkit/src/summary-reporter.ts"],
    pool: "forks",
    // Integration tests wait on I/O, not CPU: more workers than the 2 cores keeps them busy.
    maxWorkers: 4,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    teardownTimeout: 10_000,
  },
});
