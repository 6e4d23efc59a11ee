import { createRequire } from "node:module";
import { type Context, context, createContextKey, SpanKind, trace } from "@opentelemetry/api";
import type { PgInstrumentation } from "@opentelemetry/instrumentation-pg";
import { type Sampler, SamplingDecision } from "@opentelemetry/sdk-trace";
import { endAfter, tracer } from "./spans.ts";

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

const IN_TRANSACTION = createContextKey("mikrom.db.transaction");

/**
 * Runs a transaction (`work` opens it) under one CLIENT span, `db.transaction`: the statements
 * inside make none (see `statementsInTransactions`). A span per statement was most of each trace
 * (60 of 105 spans per VM) and a tenth of each service's CPU, and said little the transaction's
 * span does not. Without an active span (a relay or projector polling) there is no span at all,
 * as for a statement outside any operation (`requireParentSpan`).
 */
export function traceTransaction<T>(work: () => Promise<T>, database?: string): Promise<T> {
  if (!trace.getSpan(context.active())) return work();
  const attributes = { "db.system.name": "postgresql", ...(database && { "db.namespace": database }) };
  return tracer().startActiveSpan("db.transaction", { kind: SpanKind.CLIENT, attributes }, (span) =>
    context.with(context.active().setValue(IN_TRANSACTION, true), () => endAfter(span, work)),
  );
}

/** The sampler, but a pg statement inside `traceTransaction` is not recorded (it still has ids). */
export function statementsInTransactions(inner: Sampler): Sampler {
  return {
    shouldSample(ctx: Context, traceId, name, kind, attributes, links) {
      if (ctx.getValue(IN_TRANSACTION) === true && name.startsWith("pg.")) {
        return { decision: SamplingDecision.NOT_RECORD };
      }
      return inner.shouldSample(ctx, traceId, name, kind, attributes, links);
    },
    toString: () => `StatementsInTransactions{${inner.toString()}}`,
  };
}
