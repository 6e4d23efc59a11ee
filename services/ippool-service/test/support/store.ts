import { type Names, names as namesOf } from "@mikrom/contracts";
import { sql } from "kysely";
import { type IppoolStore, openIppoolStore } from "../../src/store/event-store.ts";

export interface OutboxEntry {
  subject: string;
  type: string;
  data: Record<string, unknown>;
}

export async function openTestStore(
  url: string,
  poolSize = 8,
): Promise<{ store: IppoolStore; names: Names }> {
  const names = namesOf("t");
  return { store: await openIppoolStore({ databaseUrl: url, names, poolSize }), names };
}

/** What the relay would publish, in order (no relay runs in these tests). */
export async function outbox(store: IppoolStore): Promise<OutboxEntry[]> {
  const { rows } = await sql<{
    subject: string;
    headers: Record<string, string>;
    data: Record<string, unknown>;
  }>`
    SELECT subject, headers, data FROM outbox ORDER BY id`.execute(store.db);
  return rows.map((r) => ({ subject: r.subject, type: r.headers["Mikrom-Type"] ?? "", data: r.data }));
}
