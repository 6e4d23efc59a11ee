import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import pg from "pg";

/** A service's database and the one role that may use it. */
export interface ServiceDatabase {
  /** The database, created when missing. */
  readonly database: string;
  /** The service's LOGIN role: it owns the database, and nothing else (unless `owner` is set). */
  readonly role: string;
  /** Set (again) on every run; none under trust authentication. */
  readonly password?: string | undefined;
  /** Set for a service that must not own its database (audit: it could drop its own guards). */
  readonly owner?: DatabaseOwner | undefined;
}

/**
 * A database owned by a role no service logs in as. The setup (the admin, acting as the owner) runs
 * the service's migrations, then gives the service's role exactly `tables` and `sequences` on what
 * they made: no ALTER, DROP, TRUNCATE or trigger of its own, and no CREATE in the schema.
 */
export interface DatabaseOwner {
  /** A NOLOGIN role that owns the database and everything in it. */
  readonly role: string;
  /** The service's migrations, given a URL that acts as the owner (the admin's, `SET ROLE` owner). */
  readonly migrate: (ownerUrl: string) => Promise<void>;
  /** What the service's role may do on every table of schema public. */
  readonly tables: readonly ("SELECT" | "INSERT" | "UPDATE" | "DELETE")[];
  /** What it may do on every sequence there (USAGE: nextval, for a serial column). */
  readonly sequences: readonly ("USAGE" | "SELECT")[];
}

/** What a run found: whether it made the role and the database, and how many objects it handed over. */
export interface SetupOutcome {
  readonly role: "created" | "existed";
  readonly database: "created" | "existed";
  /** Objects in the database that another role owned (a database from before roles) now the service's. */
  readonly adopted: number;
}

/** Setups serialize on this lock: concurrent ALTER ROLE or GRANT on one row fail with "tuple concurrently updated". */
const LOCK = "mikrom.database-roles";
// duplicate_object, duplicate_database, and unique_violation when two creates commit at once.
const ALREADY_EXISTS = new Set(["42710", "42P04", "23505"]);

/**
 * Makes `target.role` a plain LOGIN role (no superuser, no CREATEDB, no CREATEROLE) that owns
 * `target.database` and everything in it, and takes CONNECT and TEMPORARY on that database from
 * PUBLIC, so no other service's role can open it. With `target.owner`, the NOLOGIN owner role owns
 * them instead: the service's migrations run as it, and `target.role` gets CONNECT and the owner's
 * grants only. Idempotent, and safe when replicas run it at once. `adminUrl` is a superuser, or a
 * role with CREATEROLE and CREATEDB (CloudNativePG's owner).
 */
export async function ensureServiceDatabase(
  adminUrl: string,
  target: ServiceDatabase,
): Promise<SetupOutcome> {
  const admin = await connect(adminUrl);
  try {
    await admin.query("SELECT pg_advisory_lock(hashtext($1))", [LOCK]);
    const role = await ensureRole(admin, target, true);
    const owner = target.owner?.role ?? target.role;
    if (target.owner) await ensureRole(admin, { database: target.database, role: owner }, false);
    const superuser = (await admin.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
      .rows[0]?.rolsuper as boolean;
    // A non-superuser admin must be able to SET ROLE to a database's new owner (and act as it).
    if (!superuser) await admin.query(`GRANT ${ident(admin, owner)} TO CURRENT_USER`);
    const database = await ensureOwnedDatabase(admin, target.database, owner);
    const db = ident(admin, target.database);
    await admin.query(`REVOKE CONNECT, TEMPORARY ON DATABASE ${db} FROM PUBLIC`);
    if (target.owner) await admin.query(`GRANT CONNECT ON DATABASE ${db} TO ${ident(admin, target.role)}`);
    const databaseUrl = withDatabase(adminUrl, target.database);
    const adopted = await adoptObjects(databaseUrl, owner);
    if (target.owner) await migrateAsOwner(actingAs(databaseUrl, owner), target.role, target.owner);
    return { role, database, adopted };
  } finally {
    await admin.end().catch(() => {});
  }
}

/** `base` with the service's role, its password and its database: the URL the service connects with. */
export function serviceUrl(base: string, target: ServiceDatabase): string {
  const url = new URL(withDatabase(base, target.database));
  url.username = encodeURIComponent(target.role);
  url.password = target.password ? encodeURIComponent(target.password) : "";
  return url.toString();
}

/** The role, password and database a service URL names: what the setup makes for it. */
export function serviceDatabaseOf(url: string): ServiceDatabase {
  const u = new URL(url);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ""));
  const role = decodeURIComponent(u.username);
  if (!database || !role)
    throw new Error(`${u.protocol}//…@${u.host}${u.pathname} names no role or no database`);
  return { database, role, password: u.password ? decodeURIComponent(u.password) : undefined };
}

async function ensureRole(
  admin: pg.Client,
  target: ServiceDatabase,
  login: boolean,
): Promise<"created" | "existed"> {
  const role = ident(admin, target.role);
  // A SCRAM verifier, not the password: the statement may be logged by the server (log_statement).
  const password = target.password ? ` PASSWORD ${admin.escapeLiteral(scramVerifier(target.password))}` : "";
  const { rows } = await admin.query(
    "SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = $1",
    [target.role],
  );
  const found = rows[0] as
    | { rolsuper: boolean; rolcreatedb: boolean; rolcreaterole: boolean; rolcanlogin: boolean }
    | undefined;
  if (!found) {
    try {
      await admin.query(
        `CREATE ROLE ${role} ${login ? "LOGIN" : "NOLOGIN"} NOSUPERUSER NOCREATEDB NOCREATEROLE${password}`,
      );
      return "created";
    } catch (error) {
      if (!ALREADY_EXISTS.has(codeOf(error))) throw error;
    }
  }
  // Only what differs: changing SUPERUSER (even to what it is) takes a superuser.
  const changes = [
    found?.rolsuper ? "NOSUPERUSER" : "",
    found?.rolcreatedb ? "NOCREATEDB" : "",
    found?.rolcreaterole ? "NOCREATEROLE" : "",
    found && found.rolcanlogin !== login ? (login ? "LOGIN" : "NOLOGIN") : "",
  ].filter(Boolean);
  if (changes.length > 0 || password) await admin.query(`ALTER ROLE ${role} ${changes.join(" ")}${password}`);
  return "existed";
}

async function ensureOwnedDatabase(
  admin: pg.Client,
  database: string,
  owner: string,
): Promise<"created" | "existed"> {
  const db = ident(admin, database);
  const role = ident(admin, owner);
  const { rows } = await admin.query(
    "SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1",
    [database],
  );
  if (rows.length === 0) {
    try {
      await admin.query(`CREATE DATABASE ${db} OWNER ${role}`);
      return "created";
    } catch (error) {
      if (!ALREADY_EXISTS.has(codeOf(error))) throw error;
    }
  }
  if (rows[0]?.owner !== owner) await admin.query(`ALTER DATABASE ${db} OWNER TO ${role}`);
  return "existed";
}

/**
 * The service's migrations as the owner, then the service's role given exactly the owner's grants
 * on what is there (taken back first, so a grant dropped from the list is dropped from the role).
 */
async function migrateAsOwner(ownerUrl: string, role: string, owner: DatabaseOwner): Promise<void> {
  await owner.migrate(ownerUrl);
  const client = await connect(ownerUrl);
  try {
    const r = ident(client, role);
    await client.query("BEGIN");
    // PostgreSQL 15 gives PUBLIC no CREATE on schema public; older servers do (a warning where the
    // owner may not take it back: the server's own schema).
    await client.query("REVOKE CREATE ON SCHEMA public FROM PUBLIC");
    await client.query(`REVOKE ALL ON SCHEMA public FROM ${r}`);
    await client.query(`GRANT USAGE ON SCHEMA public TO ${r}`);
    await client.query(`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${r}`);
    await client.query(`REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM ${r}`);
    if (owner.tables.length > 0)
      await client.query(`GRANT ${owner.tables.join(", ")} ON ALL TABLES IN SCHEMA public TO ${r}`);
    if (owner.sequences.length > 0)
      await client.query(`GRANT ${owner.sequences.join(", ")} ON ALL SEQUENCES IN SCHEMA public TO ${r}`);
    // Kysely's bookkeeping is the owner's alone: a service that could add a row there could make
    // the owner's next run skip a migration (one that hardens its own table, say).
    for (const table of ["kysely_migration", "kysely_migration_lock"]) {
      const { rows } = await client.query("SELECT to_regclass($1) IS NOT NULL AS present", [table]);
      if (rows[0]?.present)
        await client.query(
          `GRANT SELECT ON ${table} TO ${r}; REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ${table} FROM ${r}`,
        );
    }
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    await client.end().catch(() => {});
  }
}

/** `url` (the admin's) acting as `role` from its first statement: the `role` setting at connect. */
function actingAs(url: string, role: string): string {
  const u = new URL(url);
  u.searchParams.set("options", `-c role=${role.replace(/[\\ ]/g, "\\$&")}`);
  return u.toString();
}

/**
 * A database made before roles holds tables the old owner made: the new owner could not read them.
 * Everything outside the system schemas (and not an extension's) becomes the role's; a table's
 * own sequences go with it.
 */
async function adoptObjects(databaseUrl: string, role: string): Promise<number> {
  const client = await connect(databaseUrl);
  try {
    const { rows } = await client.query<{ statement: string }>(ADOPTABLE, [role]);
    if (rows.length === 0) return 0;
    await client.query("BEGIN");
    for (const { statement } of rows) await client.query(statement);
    await client.query("COMMIT");
    return rows.length;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    await client.end().catch(() => {});
  }
}

/** `ALTER … OWNER TO` for every object of the database the role does not own yet (quoted by the server). */
const ADOPTABLE = `
WITH r AS (SELECT oid FROM pg_roles WHERE rolname = $1),
     own AS (SELECT oid, nspname FROM pg_namespace
             WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'),
     ext AS (SELECT objid FROM pg_depend WHERE deptype = 'e')
SELECT format('ALTER SCHEMA %I OWNER TO %I', n.nspname, $1::text) AS statement
  FROM own n JOIN pg_namespace s ON s.oid = n.oid, r
 WHERE s.nspowner <> r.oid AND pg_get_userbyid(s.nspowner) <> 'pg_database_owner'
   AND n.oid NOT IN (SELECT objid FROM ext)
UNION ALL
SELECT format('ALTER %s %s OWNER TO %I',
         CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                        WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
         c.oid::regclass, $1::text)
  FROM pg_class c JOIN own n ON n.oid = c.relnamespace, r
 WHERE c.relowner <> r.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.deptype IN ('a', 'i', 'e'))
UNION ALL
SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, $1::text)
  FROM pg_proc p JOIN own n ON n.oid = p.pronamespace, r
 WHERE p.proowner <> r.oid AND p.prokind IN ('f', 'p') AND p.oid NOT IN (SELECT objid FROM ext)
UNION ALL
SELECT format('ALTER TYPE %s OWNER TO %I', t.oid::regtype, $1::text)
  FROM pg_type t JOIN own n ON n.oid = t.typnamespace, r
 WHERE t.typowner <> r.oid AND t.typtype IN ('e', 'd', 'r') AND t.oid NOT IN (SELECT objid FROM ext)`;

/**
 * PostgreSQL's SCRAM-SHA-256 verifier of a password (RFC 5802/7677; 4096 iterations, the server's
 * default), so the password itself never reaches the server. The password is prepared as libpq and
 * node-postgres prepare it when they log in (SASLprep's mappings and NFKC; identity for ASCII).
 */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16)): string {
  const iterations = 4096;
  const prepared = password
    .replace(/[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g, " ")
    // biome-ignore lint/suspicious/noMisleadingCharacterClass: these are removed one by one (RFC 3454 B.1), never combined
    .replace(/[\u00AD\u034F\u1806\u180B-\u180D\u200C\u200D\u2060\uFE00-\uFE0F\uFEFF]/g, "")
    .normalize("NFKC");
  const salted = pbkdf2Sync(prepared, salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest();
  const serverKey = createHmac("sha256", salted).update("Server Key").digest();
  const b64 = (b: Buffer): string => b.toString("base64");
  return `SCRAM-SHA-256$${iterations}:${b64(salt)}$${b64(storedKey)}:${b64(serverKey)}`;
}

function ident(client: pg.Client, name: string): string {
  return client.escapeIdentifier(name);
}

function codeOf(error: unknown): string {
  return String((error as { code?: unknown }).code ?? "");
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  // A server going away mid-call emits 'error' besides failing the query; unheard, it ends the process.
  client.on("error", () => {});
  await client.connect();
  return client;
}
