import { type Kysely, type Selectable, sql } from "kysely";
import { batched } from "../store/batched.ts";
import type { CommandsTable, GatewayDb } from "../store/db.ts";

/**
 * The gateway's record of the commands it answered for (the `commands` table): written before the
 * command is first sent, settled when its outcome is seen, sent again while unsettled.
 */
export type CommandRecord = Selectable<CommandsTable>;

export interface NewCommand {
  readonly commandId: string;
  readonly userId: number;
  readonly service: string;
  readonly verb: string;
  readonly type: string;
  readonly context: string;
  readonly entityId: string;
  readonly data: unknown;
  /** The request's trace context and baggage: a re-send continues the request's trace. */
  readonly carrier: Record<string, string>;
  readonly correlationId: string;
}

export interface Settlement {
  readonly commandId: string;
  readonly outcome: "accepted" | "rejected";
  readonly eventType: string;
  readonly code?: string | undefined;
  readonly reason?: string | undefined;
}

/** The first send is the request's own; the first re-send comes after it could have been answered. */
const FIRST_RESEND_S = 2;
const MAX_RESEND_S = 30;

/**
 * Records commands; a retry of the same request (same id) finds the first record instead. The
 * commands of one moment are one statement (see `batched`): each request still waits for its own
 * row to be committed before its command is sent.
 */
export function recorder(db: Kysely<GatewayDb>): (command: NewCommand) => Promise<CommandRecord> {
  return batched(async (commands: readonly NewCommand[]) => {
    const inserted = await db
      .insertInto("commands")
      .values(
        commands.map((c) => ({
          command_id: c.commandId,
          user_id: c.userId,
          service: c.service,
          verb: c.verb,
          type: c.type,
          context: c.context,
          entity_id: c.entityId,
          data: JSON.stringify(c.data),
          carrier: JSON.stringify(c.carrier),
          correlation_id: c.correlationId,
          next_send_at: sql<Date>`now() + make_interval(secs => ${FIRST_RESEND_S})`,
        })),
      )
      .onConflict((oc) => oc.column("command_id").doNothing())
      .returningAll()
      .execute();
    const byId = new Map(inserted.map((row) => [row.command_id, row]));
    const earlier = commands.map((c) => c.commandId).filter((id) => !byId.has(id));
    if (earlier.length > 0) {
      const rows = await db
        .selectFrom("commands")
        .selectAll()
        .where("command_id", "=", sql<string>`any(${[...new Set(earlier)]}::uuid[])`)
        .execute();
      for (const row of rows) byId.set(row.command_id, row);
    }
    return commands.map((c) => {
      const row = byId.get(c.commandId);
      if (!row) throw new Error(`command ${c.commandId} was neither recorded nor found`);
      return row;
    });
  });
}

/** Outcomes seen, written in one statement; a command settles once. */
export async function settle(db: Kysely<GatewayDb>, settled: readonly Settlement[]): Promise<void> {
  if (settled.length === 0) return;
  await sql`
    UPDATE commands AS c
    SET outcome = s.outcome, outcome_type = s.event_type, code = s.code, reason = s.reason, settled_at = now()
    FROM unnest(${settled.map((s) => s.commandId)}::uuid[], ${settled.map((s) => s.outcome)}::text[],
                ${settled.map((s) => s.eventType)}::text[], ${settled.map((s) => s.code ?? null)}::text[],
                ${settled.map((s) => s.reason ?? null)}::text[]) AS s(id, outcome, event_type, code, reason)
    WHERE c.command_id = s.id AND c.settled_at IS NULL`.execute(db);
}

/**
 * Unsettled commands whose re-send is due, claimed for this replica (the next one is pushed back,
 * doubling up to 30 s): every replica re-sends, none the same command at once.
 */
export async function claimDue(db: Kysely<GatewayDb>, limit: number): Promise<CommandRecord[]> {
  const { rows } = await sql<CommandRecord>`
    UPDATE commands SET attempts = attempts + 1,
      next_send_at = now() + make_interval(secs => least(${MAX_RESEND_S}, ${FIRST_RESEND_S} * 2 ^ (attempts + 1)))
    WHERE command_id IN (
      SELECT command_id FROM commands WHERE settled_at IS NULL AND next_send_at <= now()
      ORDER BY next_send_at LIMIT ${limit} FOR UPDATE SKIP LOCKED)
    RETURNING *`.execute(db);
  return rows;
}

/** The latest create of a VM the gateway answered for (to show a VM its service has not recorded yet). */
export async function createOf(db: Kysely<GatewayDb>, vmId: string): Promise<CommandRecord | undefined> {
  return db
    .selectFrom("commands")
    .selectAll()
    .where("entity_id", "=", vmId)
    .where("type", "=", "CreateVm")
    .orderBy("created_at", "desc")
    .limit(1)
    .executeTakeFirst();
}

/** Creates not yet settled, newest first (one user's, or everyone's). */
export async function unsettledCreates(
  db: Kysely<GatewayDb>,
  userId: number | null,
): Promise<CommandRecord[]> {
  let q = db
    .selectFrom("commands")
    .selectAll()
    .where("type", "=", "CreateVm")
    .where("settled_at", "is", null);
  if (userId !== null) q = q.where("user_id", "=", userId);
  return q.orderBy("created_at", "desc").limit(100).execute();
}

/** Settled commands are kept a day (a refused create answers 410 meanwhile), then forgotten. */
export async function forgetSettled(db: Kysely<GatewayDb>): Promise<void> {
  await db.deleteFrom("commands").where("settled_at", "<", sql<Date>`now() - interval '24 hours'`).execute();
}
