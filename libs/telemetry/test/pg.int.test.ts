// pg and kysely are imported here, as in a service, before startTelemetry runs: ES imports are hoisted,
// so this is the case the instrumentation must handle (see src/pg.ts).
import { expect, SpanKindOtlp, startTestTelemetry, type TestTelemetry, test } from "@mikrom/testkit";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll } from "vitest";
import { traceTransaction, withSpan } from "../src/index.ts";

let otel: TestTelemetry;
beforeAll(async () => {
  otel = await startTestTelemetry({ serviceName: "pg-test", traces: true, metrics: false });
});
afterAll(() => otel.stop());

test("a query through kysely over an ESM-imported pg pool is a client span under the operation's span", async ({
  db,
}) => {
  const kysely = new Kysely<Record<string, never>>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: db.url, max: 2 }) }),
  });
  try {
    await withSpan("service.test.query", {}, async () => {
      await sql`select 42 as answer`.execute(kysely);
    });
    // Outside any operation: no span (requireParentSpan), so polling loops do not flood Tempo.
    await sql`select 'unparented' as orphan`.execute(kysely);
  } finally {
    await kysely.destroy();
  }
  await otel.telemetry.flush();
  const spans = await otel.otlp.waitFor((all) => all.some((s) => s.name === "service.test.query"));
  const parent = spans.find((s) => s.name === "service.test.query")!;
  const queries = spans.filter(
    (s) => s.attributes["db.system.name"] === "postgresql" && s.kind === SpanKindOtlp.CLIENT,
  );
  const answer = queries.find((s) => String(s.attributes["db.query.text"]).includes("select 42"));
  expect(answer, JSON.stringify(queries.map((q) => q.name))).toBeDefined();
  expect(answer).toMatchObject({ traceId: parent.traceId, parentSpanId: parent.spanId });
  expect(answer!.attributes["db.namespace"]).toBe(db.name);
  expect(queries.some((s) => String(s.attributes["db.query.text"]).includes("unparented"))).toBe(false);
});

test("a query through a plain pg client is a span too", async ({ db }) => {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await withSpan("service.test.client", {}, async () => {
      await client.query("select $1::int as n", [7]);
    });
  } finally {
    await client.end();
  }
  await otel.telemetry.flush();
  const spans = await otel.otlp.waitFor((all) => all.some((s) => s.name === "service.test.client"));
  const parent = spans.find((s) => s.name === "service.test.client")!;
  const query = spans.find(
    (s) => s.parentSpanId === parent.spanId && s.attributes["db.system.name"] === "postgresql",
  );
  expect(query?.attributes["db.query.text"]).toBe("select $1::int as n");
  // Parameters stay out of spans: they may hold secrets.
  expect(JSON.stringify(query?.attributes)).not.toContain('"7"');
});

test("a transaction is one db.transaction span with no statement spans under it; outside an operation, none", async ({
  db,
}) => {
  const kysely = new Kysely<Record<string, never>>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: db.url, max: 2 }) }),
  });
  try {
    await withSpan("service.test.transaction", {}, async () => {
      await traceTransaction(
        () =>
          kysely.transaction().execute(async (tx) => {
            await sql`select 'inside one' as a`.execute(tx);
            await sql`select 'inside two' as b`.execute(tx);
          }),
        db.name,
      );
      await sql`select 'after it' as c`.execute(kysely);
    });
    // A relay or projector polling: no active span, so no root trace of its own.
    await traceTransaction(() =>
      kysely.transaction().execute((tx) => sql`select 'polling' as d`.execute(tx)),
    );
  } finally {
    await kysely.destroy();
  }
  await otel.telemetry.flush();
  const spans = await otel.otlp.waitFor((all) => all.some((s) => s.name === "service.test.transaction"));
  const parent = spans.find((s) => s.name === "service.test.transaction")!;
  const transactions = spans.filter((s) => s.name === "db.transaction");
  expect(transactions).toHaveLength(1);
  expect(transactions[0]).toMatchObject({
    traceId: parent.traceId,
    parentSpanId: parent.spanId,
    kind: SpanKindOtlp.CLIENT,
    attributes: { "db.system.name": "postgresql", "db.namespace": db.name },
  });
  const statements = spans
    .filter((s) => s.attributes["db.system.name"] === "postgresql" && s.name !== "db.transaction")
    .map((s) => String(s.attributes["db.query.text"]));
  // The statement after the transaction is its own span; those inside (and BEGIN/COMMIT) are not.
  expect(statements.some((q) => q.includes("after it"))).toBe(true);
  expect(statements.filter((q) => /inside|polling|BEGIN|COMMIT/i.test(q))).toEqual([]);
});
