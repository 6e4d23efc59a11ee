import { createHash } from "node:crypto";
import { createLogger, errorFields } from "@mikrom/telemetry";
import type { PostgresPool, PostgresPoolClient } from "kysely";
import pg from "pg";

const log = createLogger("mikrom.eventstore");

export interface PoolOptions {
  /** Connections in the pool (default 10). Bound the concurrency of handlers by it: see README. */
  readonly max?: number;
  /** How long an operation waits for a free connection before failing (default 10 s): never hang. */
  readonly acquireTimeoutMs?: number;
  /** PostgreSQL ends a session idle inside a transaction this long (default 60 s), releasing its locks. */
  readonly idleInTransactionTimeoutMs?: number;
  readonly applicationName?: string;
}

/**
 * Marks a statement to prepare though its text expands a `*` (the store's own, whose `*` is over
 * unnest or a CTE, never over a table a migration could widen).
 */
export const PREPARED = "/* mikrom:prepared */";

/** Distinct statements a process prepares at most; past it, statements run unnamed (a text built per call). */
const MAX_PREPARED = 500;

/** `*` or `"t".*` in a column list: a column a migration adds changes such a statement's result. */
const STAR_COLUMNS = /(?:^|[\s,(])(?:"[^"]*"\.)?\*(?=[\s,]|$)/;

/** Each text's statement name, or null for one that runs unnamed. */
const names = new Map<string, string | null>();

/**
 * The name to prepare `text` under, or undefined to run it unnamed. Every statement with parameters
 * is prepared, parsed and planned once per connection instead of on every call (half PostgreSQL's
 * CPU for a one-row lookup or update here), unless it expands `*`: PostgreSQL refuses to run a
 * prepared statement whose result columns changed ("cached plan must not change result type"), and
 * a replica's migration can add one under another replica's statements.
 */
function statementName(text: string, parameters: number): string | undefined {
  const known = names.get(text);
  if (known !== undefined) return known ?? undefined;
  if (parameters === 0) return undefined;
  if (names.size >= MAX_PREPARED) return undefined;
  const prepared = text.startsWith(PREPARED) || !STAR_COLUMNS.test(text);
  // A statement name is a hash of its text, so a different text can never reuse a name.
  const name = prepared ? `mikrom_${createHash("sha1").update(text).digest("hex").slice(0, 16)}` : null;
  names.set(text, name);
  return name ?? undefined;
}

/**
 * A pg pool whose connections run statements with parameters as named prepared statements (see
 * statementName): the store's appends went to twice the appends per second at 64 streams here, with
 * half the client's CPU. Kysely's queries come through here too.
 */
export function createPool(connectionString: string, options: PoolOptions = {}): PostgresPool {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.acquireTimeoutMs ?? 10_000,
    idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs ?? 60_000,
    application_name: options.applicationName ?? "mikrom-eventstore",
  });
  let ending = false;
  // A connection the server ends (restart, failover, database dropped) emits 'error'; with no
  // listener that ends the process. The pool listens while a client is idle, and only then: a client
  // checked out between two queries of a transaction has no listener but ours. The query in flight
  // fails on its own; the broken client is discarded when it is released.
  pool.on("error", (error) => {
    if (!ending) log.warn(errorFields(error), "idle PostgreSQL connection failed");
  });
  pool.on("connect", (client) => {
    client.on("error", (error) => {
      if (!ending) log.warn(errorFields(error), "PostgreSQL connection failed while in use");
    });
  });

  // One wrapper per pg client, so kysely (which keys its connections by client) keeps recognizing it.
  const wrappers = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const wrap = (client: pg.PoolClient): PostgresPoolClient => {
    let wrapper = wrappers.get(client);
    if (!wrapper) {
      wrapper = {
        query: ((text: unknown, parameters?: ReadonlyArray<unknown>) => {
          const name = typeof text === "string" ? statementName(text, parameters?.length ?? 0) : undefined;
          if (name) return client.query({ name, text: text as string, values: parameters as unknown[] });
          return (client.query as (t: unknown, p?: unknown) => unknown).call(client, text, parameters);
        }) as PostgresPoolClient["query"],
        release: (destroy?: boolean) => client.release(destroy),
        get processID() {
          return (client as unknown as { processID?: number }).processID;
        },
      };
      wrappers.set(client, wrapper);
    }
    return wrapper;
  };

  const kysely: PostgresPool = {
    options: pool.options,
    connect: async () => wrap(await pool.connect()),
    end: () => {
      ending = true;
      return pool.end();
    },
  };
  const withClient = pool as unknown as { Client?: PostgresPool["Client"] };
  if (withClient.Client) Object.assign(kysely, { Client: withClient.Client });
  return kysely;
}
