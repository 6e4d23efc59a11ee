import { setTimeout as delay } from "node:timers/promises";
import { createLogger, errorFields, traceTransaction } from "@mikrom/telemetry";
import { type Kysely, sql } from "kysely";
import type { DomainEvent } from "./decider.ts";
import { type Checkpoint, checkpointOf } from "./event.ts";
import type { Projection } from "./projections.ts";
import { selectAfter, toRecorded } from "./read.ts";
import type { EventStoreTables } from "./schema.ts";
import type { EventStore } from "./store.ts";

const log = createLogger("mikrom.eventstore.projector");

export interface ProjectorOptions {
  /** Events applied per transaction (default 500). */
  readonly batchSize?: number;
  /** How often a caught-up projector looks for new events (default 500 ms). */
  readonly pollIntervalMs?: number;
}

/** Runs a projection asynchronously: batches of events and the checkpoint after them commit together. */
export interface Projector {
  start(): void;
  stop(): Promise<void>;
  /** Applies everything committed before the oldest running transaction; returns the events applied. */
  catchUp(): Promise<number>;
  /** Empties the projection, moves its checkpoint to the start, and catches up again. */
  rebuild(): Promise<number>;
  checkpoint(): Promise<Checkpoint>;
}

interface CheckpointRow {
  tx_id: string;
  position: string;
}

export function createProjector<E extends DomainEvent, DB>(
  store: EventStore<E, DB>,
  projection: Projection<E, DB>,
  options: ProjectorOptions = {},
): Projector {
  const db = store.db as unknown as Kysely<EventStoreTables>;
  const { catalog } = store.parts;
  const batchSize = options.batchSize ?? 500;
  const pollIntervalMs = options.pollIntervalMs ?? 500;
  const name = projection.name;
  const stop = new AbortController();
  let running: Promise<void> | undefined;
  let registered: Promise<unknown> | undefined;

  const register = (): Promise<unknown> => {
    registered ??= sql`INSERT INTO projection_checkpoints (name) VALUES (${name}) ON CONFLICT DO NOTHING`
      .execute(db)
      .catch((error: unknown) => {
        registered = undefined;
        throw error;
      });
    return registered;
  };

  /** One batch in one transaction; the row lock on the checkpoint keeps two replicas from applying it twice. */
  async function step(): Promise<number> {
    await register();
    return traceTransaction(() =>
      db.transaction().execute(async (trx) => {
        const { rows } = await sql<CheckpointRow>`
        SELECT tx_id::text AS tx_id, position::text AS position FROM projection_checkpoints
        WHERE name = ${name} FOR UPDATE`.execute(trx);
        const row = rows[0]!;
        const after = { txId: BigInt(row.tx_id), position: BigInt(row.position) };
        const events = (await selectAfter(trx, after, batchSize)).map((r) => toRecorded(catalog, r));
        if (events.length === 0) return 0;
        await projection.apply(trx as unknown as Kysely<DB>, events);
        const last = checkpointOf(events.at(-1)!);
        await sql`
        UPDATE projection_checkpoints
        SET tx_id = ${last.txId.toString()}::xid8, position = ${last.position.toString()}::bigint, updated_at = now()
        WHERE name = ${name}`.execute(trx);
        return events.length;
      }),
    );
  }

  async function catchUp(): Promise<number> {
    let total = 0;
    for (let n = await step(); n > 0; n = await step()) total += n;
    return total;
  }

  async function loop(): Promise<void> {
    let failures = 0;
    while (!stop.signal.aborted) {
      let wait = pollIntervalMs;
      try {
        if ((await step()) > 0) wait = 0;
        failures = 0;
      } catch (error) {
        log.error({ ...errorFields(error), projection: name }, "projection batch failed; retrying");
        wait = Math.min(5000, 100 * 2 ** failures++);
      }
      if (wait > 0) await delay(wait, undefined, { signal: stop.signal }).catch(() => {});
    }
  }

  return {
    start() {
      running ??= loop();
    },
    async stop() {
      stop.abort();
      await running;
    },
    catchUp,
    async rebuild() {
      await register();
      await db.transaction().execute(async (trx) => {
        await sql`
          UPDATE projection_checkpoints SET tx_id = '0', position = 0, updated_at = now()
          WHERE name = ${name}`.execute(trx);
        await projection.reset(trx as unknown as Kysely<DB>);
      });
      return catchUp();
    },
    async checkpoint() {
      await register();
      const { rows } = await sql<CheckpointRow>`
        SELECT tx_id::text AS tx_id, position::text AS position FROM projection_checkpoints
        WHERE name = ${name}`.execute(db);
      return { txId: BigInt(rows[0]!.tx_id), position: BigInt(rows[0]!.position) };
    },
  };
}
