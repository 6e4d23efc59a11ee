import { createRequire } from "node:module";
import type { PgInstrumentation } from "@opentelemetry/instrumentation-pg";

const require = createRequire(import.meta.url);

/**
 * Makes sure the `pg` that the services use is instrumented, however it was loaded.
 *
 * The pg instrumentation patches `Client.prototype.query` and `Pool.prototype.connect` when `pg` is
 * required through require-in-the-middle. Under ESM that hook never sees `pg`: `import pg from "pg"`
 * loads pg's ESM wrapper, which imports `lib/index.js` by a relative path, and ES imports are hoisted, so
 * pg is usually loaded before main() calls startTelemetry. Both cases end here: requiring "pg" by name
 * after the instrumentation is enabled resolves to the same CommonJS module the ESM wrapper re-exports
 * (one module cache), the hook sees that require and patches the shared prototypes, and the services'
 * `import pg` (or kysely's PostgresDialect over a pg Pool) emits spans. test/pg.int.test.ts proves it.
 */
export function patchLoadedPg(_instrumentation: PgInstrumentation): void {
  // Each by its literal name, so that a dependency check sees what this package requires.
  for (const load of [() => require("pg"), () => require("pg-pool")]) {
    try {
      load();
    } catch {
      // Not installed: nothing to instrument.
    }
  }
}
