import { CompiledQuery, type Kysely, type Transaction } from "kysely";

/**
 * The one thing the store needs from a connection: run SQL with parameters inside the caller's
 * transaction. pg clients satisfy it as they are; a kysely transaction through `kyselySql`, so the
 * same statements run inside the event store's transaction as in the tests and the benchmark.
 */
export interface Sql {
  query<R extends object>(text: string, params?: readonly unknown[]): Promise<{ rows: R[] }>;
}

// biome-ignore lint/suspicious/noExplicitAny: the event store's database type is not this package's concern
export function kyselySql(db: Kysely<any> | Transaction<any>): Sql {
  return {
    async query<R extends object>(text: string, params: readonly unknown[] = []) {
      const result = await db.executeQuery<R>(CompiledQuery.raw(text, [...params]));
      return { rows: [...result.rows] };
    },
  };
}

/** PostgreSQL's error codes the store turns into domain outcomes. */
export const PgCode = {
  UniqueViolation: "23505",
  ExclusionViolation: "23P01",
  CheckViolation: "23514",
} as const;

export function pgCode(error: unknown): string | undefined {
  return typeof error === "object" && error !== null ? (error as { code?: string }).code : undefined;
}
