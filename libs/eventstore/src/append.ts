import { type Kysely, sql } from "kysely";
import { ConcurrencyConflict } from "./errors.ts";
import type { OutboxRow } from "./outbox.ts";
import { PREPARED } from "./pool.ts";
import type { EventStoreTables } from "./schema.ts";

/** One append: events to one stream at an expected version, and their outbox rows. */
export interface AppendInput {
  readonly streamId: string;
  readonly expectedVersion: number;
  readonly ids: readonly string[];
  /** Type, schema version and data (as JSON text) of each event, in order. */
  readonly events: readonly {
    readonly type: string;
    readonly schemaVersion: number;
    readonly json: string;
  }[];
  readonly metadata: string;
  readonly outbox: readonly OutboxRow[];
  readonly carrier: string;
}

export interface AppendOutput {
  readonly positions: bigint[];
  readonly txId: bigint;
  readonly recordedAt: Date;
}

/** Per append of a statement: its result, or the conflict it ran into. */
export type AppendOutcome = AppendOutput | ConcurrencyConflict;

interface AppendRow {
  version: number;
  tx_id: string;
  recorded_at: Date;
  positions: string[] | null;
}

const STREAM_VERSION_UNIQUE = "events_stream_version_unique";

/**
 * Wakes the relay when it sleeps and outbox rows were written. NOTIFY serializes committing
 * transactions on a global lock (a third of the appends/s at 64 streams when every append notifies),
 * so appends notify only while the relay has marked itself idle. An append that read the flag just
 * before the relay set it is found by the relay, which waits for such transactions before sleeping.
 */
const WAKE_RELAY = sql`SELECT pg_notify('mikrom_outbox.' || current_schema(), '')
        FROM outbox_relay WHERE idle AND EXISTS (SELECT 1 FROM ob)`;

/**
 * Appends to one or more distinct streams in one statement: one round trip, one commit when run
 * outside a transaction. For each stream the version check is part of the insert: its rows go in only
 * when the stream's head is the expected version (else that append reports a conflict and the others
 * proceed), and a writer racing from the same version collides on (stream_id, stream_version), which
 * fails the whole statement (each is then run alone: `batched`). Expected version 0 means the stream must not exist.
 */
export async function appendStatement(
  db: Kysely<EventStoreTables>,
  inputs: readonly AppendInput[],
): Promise<AppendOutcome[]> {
  const events = inputs.flatMap((input, r) =>
    input.events.map((e, i) => ({ req: r + 1, n: i + 1, id: input.ids[i]!, ...e })),
  );
  const outbox = inputs.flatMap((input, r) => input.outbox.map((o) => ({ req: r + 1, ...o })));
  const { rows } = await sql<AppendRow>`${sql.raw(PREPARED)}
    WITH req AS (
      SELECT * FROM unnest(${inputs.map((i) => i.streamId)}::text[], ${inputs.map((i) => i.expectedVersion)}::int[],
                           ${inputs.map((i) => i.metadata)}::jsonb[], ${inputs.map((i) => i.carrier)}::jsonb[])
        WITH ORDINALITY AS r(stream_id, expected, metadata, carrier, req)
    ), cur AS (
      SELECT r.req, r.stream_id, r.expected, r.metadata, r.carrier,
             coalesce(head.stream_version, 0) AS version,
             greatest(pg_current_xact_id(), head.tx_id) AS tx_id
      FROM req r LEFT JOIN LATERAL (
        SELECT stream_version, tx_id FROM events WHERE stream_id = r.stream_id
        ORDER BY stream_version DESC LIMIT 1
      ) AS head ON true
    ), ok AS (
      SELECT * FROM cur WHERE version = expected
    ), ins AS (
      INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, metadata, tx_id)
      SELECT e.event_id, ok.stream_id, ok.version + e.n, e.type, e.schema_version, e.data, ok.metadata, ok.tx_id
      FROM unnest(${events.map((e) => e.req)}::int[], ${events.map((e) => e.n)}::int[],
                  ${events.map((e) => e.id)}::uuid[], ${events.map((e) => e.type)}::text[],
                  ${events.map((e) => e.schemaVersion)}::int[], ${events.map((e) => e.json)}::jsonb[])
             AS e(req, n, event_id, type, schema_version, data)
      JOIN ok ON ok.req = e.req
      ORDER BY e.req, e.n
      RETURNING global_position, stream_id, stream_version
    ), ob AS (
      INSERT INTO outbox (message_id, subject, data, headers, carrier)
      SELECT o.message_id, o.subject, o.data, o.headers, ok.carrier
      FROM unnest(${outbox.map((o) => o.req)}::int[], ${outbox.map((o) => o.messageId)}::uuid[],
                  ${outbox.map((o) => o.subject)}::text[], ${outbox.map((o) => o.data)}::jsonb[],
                  ${outbox.map((o) => o.headers)}::jsonb[])
             WITH ORDINALITY AS o(req, message_id, subject, data, headers, k)
      JOIN ok ON ok.req = o.req
      ORDER BY o.k
      RETURNING 1
    ), wake AS (
      ${WAKE_RELAY}
    )
    SELECT cur.version, cur.tx_id::text AS tx_id, now() AS recorded_at,
           (SELECT array_agg(ins.global_position ORDER BY ins.stream_version) FROM ins
            WHERE ins.stream_id = cur.stream_id AND cur.version = cur.expected)::text[] AS positions,
           (SELECT count(*) FROM wake) AS woken
    FROM cur ORDER BY cur.req`.execute(db);
  return inputs.map((input, r) => {
    const row = rows[r];
    if (!row) throw new Error("append returned too few rows");
    if (!row.positions) return new ConcurrencyConflict(input.streamId, input.expectedVersion, row.version);
    return { positions: row.positions.map(BigInt), txId: BigInt(row.tx_id), recordedAt: row.recorded_at };
  });
}

/**
 * An append's outcome as its caller takes it: ConcurrencyConflict thrown, whether the statement found
 * the stream moved on or a racing writer's commit made it fail (a unique violation).
 */
export async function appendThrough(
  input: AppendInput,
  statement: () => Promise<AppendOutcome>,
): Promise<AppendOutput> {
  let outcome: AppendOutcome;
  try {
    outcome = await statement();
  } catch (error) {
    if (isUniqueViolation(error, STREAM_VERSION_UNIQUE)) {
      throw new ConcurrencyConflict(input.streamId, input.expectedVersion);
    }
    throw error;
  }
  if (outcome instanceof ConcurrencyConflict) throw outcome;
  return outcome;
}

/** Appends to one stream, throwing ConcurrencyConflict when another writer got there first. */
export function appendOne(db: Kysely<EventStoreTables>, input: AppendInput): Promise<AppendOutput> {
  return appendThrough(input, async () => (await appendStatement(db, [input]))[0]!);
}

/** Outbox rows without events (commands to other services), with the relay woken as for an append. */
export async function insertOutbox(
  db: Kysely<EventStoreTables>,
  outbox: readonly OutboxRow[],
  carrier: string,
): Promise<void> {
  if (outbox.length === 0) return;
  await sql`${sql.raw(PREPARED)}
    WITH ob AS (
      INSERT INTO outbox (message_id, subject, data, headers, carrier)
      SELECT o.message_id, o.subject, o.data, o.headers, ${carrier}::jsonb
      FROM unnest(${outbox.map((o) => o.messageId)}::uuid[], ${outbox.map((o) => o.subject)}::text[],
                  ${outbox.map((o) => o.data)}::jsonb[], ${outbox.map((o) => o.headers)}::jsonb[])
                AS o(message_id, subject, data, headers)
      RETURNING 1
    ), wake AS (
      ${WAKE_RELAY}
    )
    SELECT (SELECT count(*) FROM ob) AS rows, (SELECT count(*) FROM wake) AS woken
  `.execute(db);
}

export function isUniqueViolation(error: unknown, constraint: string): boolean {
  const e = error as { code?: unknown; constraint?: unknown };
  return e?.code === "23505" && e.constraint === constraint;
}

/** The row's headers marked sent again once more (see Header.Resend): past JetStream's duplicate window. */
const BUMP_RESEND = `jsonb_set(headers, '{Mikrom-Resend}', to_jsonb((COALESCE((headers->>'Mikrom-Resend')::int, 0) + 1)::text))`;

/**
 * A message handled before and delivered again: what it caused is queued to be sent again, with the
 * same message ids, marked sent again (the rows kept after sending; see relay.retentionMs). Whoever waits for the answer
 * and missed it (its copy lost with a crashed NATS, or never seen) gets it now; others drop it.
 */
export async function requeueCausedBy(db: Kysely<EventStoreTables>, causationId: string): Promise<number> {
  const { rows } = await sql<{ rows: string }>`${sql.raw(PREPARED)}
    WITH ob AS (
      UPDATE outbox SET sent_at = NULL, headers = ${sql.raw(BUMP_RESEND)}
      WHERE headers->>'Mikrom-Causation-Id' = ${causationId} AND sent_at IS NOT NULL
      RETURNING 1
    ), wake AS (
      ${WAKE_RELAY}
    )
    SELECT (SELECT count(*) FROM ob) AS rows, (SELECT count(*) FROM wake) AS woken
  `.execute(db);
  return Number(rows[0]?.rows ?? 0);
}
