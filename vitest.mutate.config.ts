import { defineConfig } from "vitest/config";

/**
 * The unit tests `npm run mutate` runs against each mutant: no global setup (so no NATS or PostgreSQL is
 * looked for or started), and none of the *.int, *.vm or e2e tests that need them. Stryker narrows this
 * further to the tests that import the file a mutant is in (vitest --related).
 */
export default defineConfig({
  test: {
    include: ["libs/*/test/**/*.test.ts", "services/*/test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/*.int.test.ts", "**/*.vm.test.ts"],
  },
});
