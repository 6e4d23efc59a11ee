import { createHash } from "node:crypto";
import { createPool, type PoolOptions } from "@mikrom/eventstore";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";

/** `postgres://…/mikrom` + `vm` → `postgres://…/mikrom_vm`: two systems with other base names never meet. */
export function serviceDatabaseUrl(base: string, suffix: string): string {
  const url = new URL(base);
  const name = decodeURIComponent(url.pathname.replace(/^\//, "")) || "mikrom";
  url.pathname = `/${name}_${suffix}`;
  return url.toString();
}

/** PostgreSQL keeps 63 bytes of a name and silently cuts the rest: long names get a hash instead. */
const MAX_DATABASE_NAME = 63;

/**
 * `<base>_provisioner_<hostId>`: one database per host, so hosts sharing a server share nothing (the
 * deployments name the host's role alike). The URL's role is kept.
 */
export function hostDatabaseUrl(base: string, hostId: string): string {
  const url = new URL(base);
  const baseName = decodeURIComponent(url.pathname.replace(/^\//, "")) || "mikrom";
  let name = `${baseName}_provisioner_${hostId}`;
  if (Buffer.byteLength(name) > MAX_DATABASE_NAME) {
    const hash = createHash("sha1").update(name).digest("hex").slice(0, 8);
    name = `${name.slice(0, MAX_DATABASE_NAME - 9)}_${hash}`;
  }
  url.pathname = `/${encodeURIComponent(name)}`;
  return url.toString();
}

/** `host:port` of a database URL, for log lines and errors (never the password). */
export function serverOf(url: string): string {
  const { hostname, port } = new URL(url);
  return `${hostname}:${port || "5432"}`;
}

/**
 * Creates the database a URL names when it is missing, through the server's `postgres` database.
 * A database that answers is left alone, so a service whose role owns its database and nothing
 * else (database-roles.ts) never needs more. Replicas starting together may race: "already exists"
 * is success.
 */
export async function ensureDatabase(url: string): Promise<"created" | "existed"> {
  if (await databaseExists(url)) return "existed";
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ""));
  const admin = new URL(url);
  admin.pathname = "/postgres";
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5_000 });
  // A server going away mid-call emits 'error' besides failing the query; unheard, it ends the process.
  client.on("error", () => {});
  await client.connect();
  try {
    const { rows } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (rows.length > 0) return "existed";
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
    return "created";
  } catch (error) {
    // 42P04 duplicate_database; 23505 when two CREATE DATABASE commit at once.
    const code = (error as { code?: string }).code;
    if (code === "42P04" || code === "23505") return "existed";
    if (code === "42501") {
      throw new Error(
        `database "${name}" does not exist and role "${decodeURIComponent(target.username)}" may not create it: ` +
          "run the database setup first (services/audit/src/setup-databases.ts; compose's db-setup, the mikrom-db-setup Job)",
        { cause: error },
      );
    }
    throw error;
  } finally {
    await client.end().catch(() => {});
  }
}

/** The database answers a connection; false only when the server says it does not exist (3D000). */
async function databaseExists(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on("error", () => {});
  try {
    await client.connect();
    return true;
  } catch (error) {
    if ((error as { code?: string }).code === "3D000") return false;
    throw error;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * A kysely over the event store's pool: every service's connections behave alike when PostgreSQL
 * restarts (no unheard 'error' event, broken clients discarded, a bounded wait for a connection).
 */
export function openDatabase<DB>(url: string, options: PoolOptions = {}): Kysely<DB> {
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool: createPool(url, options) }) });
}

/** A service's own database, for a service without an event store (the gateway, audit). */
export interface DatabaseStore<DB> {
  readonly db: Kysely<DB>;
  close(): Promise<void>;
}

/**
 * openDatabase, then the service's migrations. A failed migration closes the pool before it throws:
 * the skeleton tries openStore again while PostgreSQL is away, and each try must not leak a pool.
 */
export async function openMigratedDatabase<DB>(
  url: string,
  options: PoolOptions,
  migrate: (db: Kysely<DB>) => Promise<void>,
): Promise<DatabaseStore<DB>> {
  const db = openDatabase<DB>(url, options);
  try {
    await migrate(db);
  } catch (error) {
    await db.destroy();
    throw error;
  }
  return { db, close: () => db.destroy() };
}
