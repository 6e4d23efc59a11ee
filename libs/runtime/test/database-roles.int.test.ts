import { describe, expect, test, uniqueName, withDatabase } from "@mikrom/testkit";
import pg from "pg";
import { afterEach, inject } from "vitest";
import { setupTargets } from "../setup/databases.ts";
import {
  ensureDatabase,
  ensureServiceDatabase,
  hostDatabaseUrl,
  type ServiceDatabase,
  serviceUrl,
} from "../src/index.ts";

// The test server (127.0.0.1, trust authentication): passwords are set but not asked for here; the
// npm-start end-to-end test logs in with them (its embedded server asks, SCRAM).
const server = inject("databaseUrl");
const adminUrl = withDatabase(server, "postgres");
const made = { databases: new Set<string>(), roles: new Set<string>() };

/** A service's database and role, with names of this test's own (dropped after it). */
function service(suffix: string): ServiceDatabase {
  const name = `${uniqueName()}_${suffix}`;
  made.databases.add(name);
  made.roles.add(name);
  return { database: name, role: name, password: `pw-${suffix}-${uniqueName()}` };
}

async function asAdmin<T>(fn: (client: pg.Client) => Promise<T>, url = adminUrl): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Connects as `target.role` to `database`, runs `sql`; the rows, or the error's SQLSTATE. */
async function as(target: ServiceDatabase, database: string, sql: string): Promise<unknown[] | string> {
  const client = new pg.Client({ connectionString: serviceUrl(server, { ...target, database }) });
  client.on("error", () => {});
  try {
    await client.connect();
    return (await client.query(sql)).rows;
  } catch (error) {
    return `refused ${(error as { code?: string }).code}`;
  } finally {
    await client.end().catch(() => {});
  }
}

afterEach(async () => {
  await asAdmin(async (c) => {
    for (const name of made.databases) {
      await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`);
    }
    for (const name of made.roles) await c.query(`DROP ROLE IF EXISTS ${c.escapeIdentifier(name)}`);
  });
  made.databases.clear();
  made.roles.clear();
});

describe("a PostgreSQL role per service", () => {
  test("the gateway's role can neither open vm-service's database nor read its tables; vm-service's can", async () => {
    const gateway = service("gateway");
    const vm = service("vm");
    await ensureServiceDatabase(adminUrl, gateway);
    await ensureServiceDatabase(adminUrl, vm);
    expect(await as(vm, vm.database, "CREATE TABLE vms AS SELECT 'srv-1' AS id")).toEqual([]);

    expect(await as(vm, vm.database, "SELECT id FROM vms")).toEqual([{ id: "srv-1" }]);
    expect(await as(gateway, vm.database, "SELECT id FROM vms")).toBe("refused 42501");
    expect(await as(gateway, gateway.database, "SELECT current_user AS who")).toEqual([
      { who: gateway.role },
    ]);
    // Were CONNECT given back to everyone, the tables would still be vm-service's alone.
    await asAdmin((c) => c.query(`GRANT CONNECT ON DATABASE "${vm.database}" TO PUBLIC`));
    expect(await as(gateway, vm.database, "SELECT id FROM vms")).toBe("refused 42501");

    const { rows } = await asAdmin((c) =>
      c.query(
        `SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolcanlogin, rolpassword LIKE 'SCRAM-SHA-256$4096:%' AS scram
           FROM pg_authid WHERE rolname = ANY($1) ORDER BY rolname`,
        [[gateway.role, vm.role].sort()],
      ),
    );
    for (const role of rows) {
      expect(role).toMatchObject({
        rolsuper: false,
        rolcreatedb: false,
        rolcreaterole: false,
        rolcanlogin: true,
        scram: true,
      });
    }
    expect(rows).toHaveLength(2);
  });

  test("a service's role cannot make a database, so a missing one is named with what to run", async () => {
    const vm = service("vm");
    await ensureServiceDatabase(adminUrl, vm);
    expect(await ensureDatabase(serviceUrl(server, vm))).toBe("existed");
    const other = `${vm.database}_other`;
    await expect(ensureDatabase(serviceUrl(server, { ...vm, database: other }))).rejects.toThrow(
      new RegExp(
        `database "${other}" does not exist and role "${vm.role}" may not create it: run the database setup`,
      ),
    );
  });

  test("running the setup again, and twice at once, succeeds and changes nothing", async () => {
    const audit = service("audit");
    expect(await ensureServiceDatabase(adminUrl, audit)).toEqual({
      role: "created",
      database: "created",
      adopted: 0,
    });
    expect(await ensureServiceDatabase(adminUrl, audit)).toEqual({
      role: "existed",
      database: "existed",
      adopted: 0,
    });

    const ippool = service("ippool");
    const outcomes = await Promise.all([
      ensureServiceDatabase(adminUrl, ippool),
      ensureServiceDatabase(adminUrl, ippool),
      ensureServiceDatabase(adminUrl, audit),
    ]);
    expect(outcomes.filter((o) => o.database === "created")).toHaveLength(1);
    const { rows } = await asAdmin((c) =>
      c.query(
        `SELECT datname, pg_get_userbyid(datdba) AS owner, has_database_privilege('public', oid, 'CONNECT') AS public
           FROM pg_database WHERE datname = ANY($1) ORDER BY datname`,
        [[audit.database, ippool.database].sort()],
      ),
    );
    expect(rows).toEqual(
      [audit, ippool]
        .map((s) => ({ datname: s.database, owner: s.role, public: false }))
        .sort((a, b) => a.datname.localeCompare(b.datname)),
    );
  });

  test("a database from before roles is handed to the service's role, tables, sequences and functions too", async () => {
    const audit = service("audit");
    await asAdmin((c) => c.query(`CREATE DATABASE "${audit.database}"`));
    await asAdmin(
      (c) =>
        c.query(`CREATE TABLE audit_log (id bigserial PRIMARY KEY, what text);
                 CREATE FUNCTION guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
                 INSERT INTO audit_log (what) VALUES ('before')`),
      withDatabase(server, audit.database),
    );

    expect((await ensureServiceDatabase(adminUrl, audit)).adopted).toBe(2);
    expect(
      await as(audit, audit.database, "INSERT INTO audit_log (what) VALUES ('after') RETURNING id, what"),
    ).toEqual([{ id: "2", what: "after" }]);
    expect(
      await as(
        audit,
        audit.database,
        "SELECT pg_get_userbyid(proowner) AS owner FROM pg_proc WHERE proname = 'guard'",
      ),
    ).toEqual([{ owner: audit.role }]);
    expect((await ensureServiceDatabase(adminUrl, audit)).adopted).toBe(0);
  });

  test("an admin that is no superuser but may create roles and databases (CloudNativePG's owner) sets up too", async () => {
    const admin = service("admin");
    made.databases.delete(admin.database);
    await asAdmin((c) => c.query(`CREATE ROLE "${admin.role}" LOGIN CREATEROLE CREATEDB`));
    const gateway = service("gateway");
    const limitedAdmin = serviceUrl(server, { ...admin, database: "postgres" });
    expect(await ensureServiceDatabase(limitedAdmin, gateway)).toMatchObject({
      role: "created",
      database: "created",
    });
    expect(await ensureServiceDatabase(limitedAdmin, gateway)).toMatchObject({
      role: "existed",
      database: "existed",
    });
    expect(await as(gateway, gateway.database, "SELECT current_user AS who")).toEqual([
      { who: gateway.role },
    ]);
  });

  test("each host has a role of its own: host A's cannot open host B's database, nor another service's", async () => {
    const base = uniqueName();
    const host = (id: string): string => {
      const url = new URL(hostDatabaseUrl(withDatabase(server, base), id));
      url.username = url.pathname.slice(1);
      url.password = `pw-${id}`;
      return url.toString();
    };
    const { targets } = setupTargets({
      POSTGRES_ADMIN_URL: adminUrl,
      SERVICE_DATABASE_URLS: `${host("a")} ${host("b")}`,
    });
    const [a, b] = targets as [ServiceDatabase, ServiceDatabase];
    for (const host of [a, b]) {
      made.databases.add(host.database);
      made.roles.add(host.role);
      await ensureServiceDatabase(adminUrl, host);
    }
    const gateway = service("gateway");
    await ensureServiceDatabase(adminUrl, gateway);

    expect(await as(a, a.database, "SELECT current_user AS who")).toEqual([{ who: a.role }]);
    expect(await as(b, b.database, "CREATE TABLE instances AS SELECT 'srv-1' AS id")).toEqual([]);
    expect(await as(a, b.database, "SELECT 1")).toBe("refused 42501");
    expect(await as(a, gateway.database, "SELECT 1")).toBe("refused 42501");
    // Were CONNECT given back to everyone, host B's records would still be its own.
    await asAdmin((c) => c.query(`GRANT CONNECT ON DATABASE "${b.database}" TO PUBLIC`));
    expect(await as(a, b.database, "SELECT id FROM instances")).toBe("refused 42501");
    expect([a.role, b.role]).toEqual([`${base}_provisioner_a`, `${base}_provisioner_b`]);
  });

  test("with an owner, the service's role gets its grants only, on a database it owned before too; a second run changes nothing", async () => {
    const audit = service("audit");
    const owner = `${audit.role}_owner`;
    made.roles.add(owner);
    await ensureServiceDatabase(adminUrl, audit);
    expect(await as(audit, audit.database, "CREATE TABLE log (id bigserial PRIMARY KEY, what text)")).toEqual(
      [],
    );
    const split: ServiceDatabase = {
      ...audit,
      owner: {
        role: owner,
        tables: ["SELECT", "INSERT"],
        sequences: ["USAGE"],
        migrate: async (url) => {
          await asAdmin((c) => c.query("CREATE TABLE IF NOT EXISTS later (id int)"), url);
        },
      },
    };
    expect(await ensureServiceDatabase(adminUrl, split)).toMatchObject({ role: "existed", adopted: 1 });
    expect(await ensureServiceDatabase(adminUrl, split)).toMatchObject({ role: "existed", adopted: 0 });

    expect(await as(audit, audit.database, "INSERT INTO log (what) VALUES ('x') RETURNING id")).toEqual([
      { id: "1" },
    ]);
    expect(await as(audit, audit.database, "SELECT count(*)::int AS n FROM later")).toEqual([{ n: 0 }]);
    for (const sql of [
      "DELETE FROM log",
      "UPDATE log SET what = 'y'",
      "DROP TABLE log",
      "CREATE TABLE t (i int)",
    ]) {
      expect(await as(audit, audit.database, sql), sql).toBe("refused 42501");
    }
    const { rows } = await asAdmin(
      (c) =>
        c.query(
          `SELECT pg_get_userbyid(d.datdba) AS database, pg_get_userbyid(t.relowner) AS later, r.rolcanlogin
                   FROM pg_database d, pg_class t, pg_roles r
                  WHERE d.datname = current_database() AND t.relname = 'later' AND r.rolname = $1`,
          [owner],
        ),
      withDatabase(server, audit.database),
    );
    expect(rows).toEqual([{ database: owner, later: owner, rolcanlogin: false }]);
  });

  test("names and passwords are quoted: a quote or a space in them is data, not SQL", async () => {
    const odd = service(`o'dd "x" y`);
    const outcome = await ensureServiceDatabase(adminUrl, { ...odd, password: `it's "quoted"; DROP ROLE x` });
    expect(outcome).toMatchObject({ role: "created", database: "created" });
    expect(await as(odd, odd.database, "SELECT current_user AS who")).toEqual([{ who: odd.role }]);
  });
});

describe("the setup's environment", () => {
  test("takes each service's and each host's URL: its role, its password, the database it owns", () => {
    const { adminUrl: admin, targets } = setupTargets({
      POSTGRES_ADMIN_URL: "postgres://mikrom:secret@db:5432/mikrom",
      SERVICE_DATABASE_URLS:
        "postgres://mikrom_gateway:a@db:5432/mikrom_gateway\n  postgres://mikrom_vm:b@db/mikrom_vm " +
        "postgres://mikrom_provisioner_node-1:c@db:5432/mikrom_provisioner_node-1",
    });
    expect(admin).toBe("postgres://mikrom:secret@db:5432/mikrom");
    expect(targets).toEqual([
      { database: "mikrom_gateway", role: "mikrom_gateway", password: "a" },
      { database: "mikrom_vm", role: "mikrom_vm", password: "b" },
      { database: "mikrom_provisioner_node-1", role: "mikrom_provisioner_node-1", password: "c" },
    ]);
    expect(() => setupTargets({ SERVICE_DATABASE_URLS: "x" })).toThrow(
      /POSTGRES_ADMIN_URL: .*\n {2}SERVICE_DATABASE_URLS/,
    );
  });
});
