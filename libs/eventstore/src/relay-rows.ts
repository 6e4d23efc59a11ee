import type pg from "pg";
import type { OutboxMessage } from "./outbox.ts";

/*
 * The outbox rows as the relay reads and marks them, on its own connection (so a re-send never races
 * the round marking rows sent). Rows stay after they are sent, for the retention (see relay.ts).
 */

export interface OutboxRecord {
  id: string;
  message_id: string;
  subject: string;
  data: unknown;
  headers: Record<string, string>;
  carrier: Record<string, string>;
  created_at: Date;
}

/** The next rows to publish, in id order. */
export async function readUnsent(client: pg.Client, batchSize: number): Promise<OutboxRecord[]> {
  const { rows } = await client.query<OutboxRecord>(
    `SELECT id::text AS id, message_id::text AS message_id, subject, data, headers, carrier, created_at
     FROM outbox WHERE sent_at IS NULL ORDER BY outbox.id LIMIT $1`,
    [batchSize],
  );
  return rows;
}

export function messageOf(row: OutboxRecord): OutboxMessage {
  return {
    id: BigInt(row.id),
    messageId: row.message_id,
    subject: row.subject,
    data: row.data,
    headers: row.headers,
    carrier: row.carrier,
    createdAt: row.created_at,
  };
}

/** Only rows JetStream acknowledged are marked: the others stay and go in the next round. */
export async function markSent(client: pg.Client, ids: readonly string[]): Promise<void> {
  await client.query("UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])", [ids]);
}

/** Puts back in the queue the rows sent within the window; resolves how many. */
export async function requeueRecent(client: pg.Client, windowMs: number): Promise<number> {
  const { rowCount } = await client.query(
    "UPDATE outbox SET sent_at = NULL WHERE sent_at > now() - make_interval(secs => $1)",
    [windowMs / 1000],
  );
  return rowCount ?? 0;
}

/** Forgets the rows sent longer ago than the retention. */
export async function pruneSent(client: pg.Client, retentionMs: number): Promise<void> {
  await client.query("DELETE FROM outbox WHERE sent_at < now() - make_interval(secs => $1)", [
    retentionMs / 1000,
  ]);
}
