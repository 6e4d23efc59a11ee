import { callQuery, connectNats, createPublisher, querySpec } from "@mikrom/bus";
import { AUDIT_SERVICE, ListAudit, names, VmCreated } from "@mikrom/contracts";
import { type ServiceDatabase, serviceUrl } from "@mikrom/runtime";
import { setupDatabases } from "@mikrom/runtime/setup";
import { createLogger } from "@mikrom/telemetry";
import { describe, expect, test, uniqueName, withDatabase } from "@mikrom/testkit";
import pg from "pg";
import { inject } from "vitest";
import { loadConfig } from "../src/config.ts";
import { startService } from "../src/service.ts";
import { setupTargets } from "../src/setup-databases.ts";

const server = inject("databaseUrl");
const adminUrl = withDatabase(server, "postgres");

/** Connects as `role` to `database`, runs `sql`; the rows, or the error's SQLSTATE. */
async function as(role: string, database: string, sql: string): Promise<unknown[] | string> {
  const client = new pg.Client({ connectionString: serviceUrl(server, { role, database }) });
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

async function asAdmin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

describe("the audit service's PostgreSQL role", () => {
  test("records and answers, but cannot drop or disable the append-only trigger, update, delete or drop the log", async ({
    nats,
  }) => {
    const name = `${uniqueName()}_audit`;
    const service: ServiceDatabase = { database: name, role: name, password: "pw" };
    // As deployments set it up (compose's db-setup, the mikrom-db-setup Job, npm start).
    const { targets } = setupTargets({
      POSTGRES_ADMIN_URL: adminUrl,
      AUDIT_DATABASE_URL: serviceUrl(server, service),
    });
    await setupDatabases(adminUrl, targets, createLogger("audit-roles-test"));
    const owner = `${name}_owner`;
    const config = loadConfig({
      NATS_URL: nats.url,
      DATABASE_URL: withDatabase(server, "mikrom"),
      AUDIT_DATABASE_URL: serviceUrl(server, service),
      MIKROM_NAMESPACE: nats.namespace,
    });
    const audit = await startService(config);
    const nc = await connectNats({ servers: nats.url, name: "audit roles test" });
    try {
      const n = names(nats.namespace);
      const vm = {
        vmId: "srv-0a1b2c3d",
        userId: 7,
        name: "web-1",
        description: null,
        vcpuCount: 1,
        memoryMb: 512,
      };
      await createPublisher(nc).send(VmCreated, n.event("vm", vm.vmId, "VmCreated"), vm, {
        messageId: "e-1",
      });
      const list = querySpec(n, AUDIT_SERVICE, ListAudit);
      const deadline = Date.now() + 10_000;
      let total = 0;
      while (total < 1 && Date.now() < deadline) {
        total = (await callQuery(nc, list, { page: 1, pageSize: 50 })).total;
        if (total < 1) await new Promise((r) => setTimeout(r, 50));
      }
      expect(total).toBe(1);
      expect(await as(name, name, "SELECT current_user AS who, count(*)::int AS n FROM audit_log")).toEqual([
        { who: name, n: 1 },
      ]);

      expect(await as(name, name, "DROP TRIGGER audit_log_append_only ON audit_log")).toBe("refused 42501");
      expect(await as(name, name, "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")).toBe(
        "refused 42501",
      );
      expect(await as(name, name, "ALTER TABLE audit_log DISABLE TRIGGER ALL")).toBe("refused 42501");
      expect(await as(name, name, "UPDATE audit_log SET type = 'nothing happened'")).toBe("refused 42501");
      expect(await as(name, name, "DELETE FROM audit_log")).toBe("refused 42501");
      expect(await as(name, name, "TRUNCATE audit_log")).toBe("refused 42501");
      expect(await as(name, name, "DROP TABLE audit_log")).toBe("refused 42501");
      expect(await as(name, name, "DROP FUNCTION audit_log_is_append_only()")).toBe("refused 42501");
      expect(await as(name, name, "CREATE TABLE mine (id int)")).toBe("refused 42501");
      // Nor can it mark a future migration done, so that the owner's next run would skip it.
      expect(
        await as(name, name, "INSERT INTO kysely_migration (name, timestamp) VALUES ('9999_later', 'now')"),
      ).toBe("refused 42501");
      expect(await as(name, name, "DELETE FROM kysely_migration_lock")).toBe("refused 42501");
      expect(await as(name, name, `SET ROLE "${owner}"`)).toBe("refused 42501");
      // The owner is no one's login.
      expect(await as(owner, name, "SELECT 1")).toBe("refused 28000");
      expect(await as(name, name, "SELECT count(*)::int AS n FROM audit_log")).toEqual([{ n: 1 }]);
    } finally {
      await nc.close();
      await audit.stop();
      await asAdmin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await asAdmin(`DROP ROLE IF EXISTS "${name}"`);
      await asAdmin(`DROP ROLE IF EXISTS "${owner}"`);
    }
  });
});
