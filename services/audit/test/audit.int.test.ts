import { callQuery, connectNats, createPublisher, querySpec } from "@mikrom/bus";
import { AUDIT_SERVICE, ListAudit, names, VmCreated, VmRunning } from "@mikrom/contracts";
import { openDatabase } from "@mikrom/runtime";
import { setContext, startTelemetry, type Telemetry, withContext, withSpan } from "@mikrom/telemetry";
import { describe, expect, test } from "@mikrom/testkit";
import { sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll } from "vitest";
import { loadConfig } from "../src/config.ts";
import { startService } from "../src/service.ts";
import { type AuditDatabase, record, recorder } from "../src/store/audit-log.ts";
import { migrate } from "../src/store/migrations.ts";

const created = {
  vmId: "srv-0a1b2c3d",
  userId: 7,
  name: "web-1",
  description: null,
  vcpuCount: 1,
  memoryMb: 512,
};

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (ok(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("the audit service", () => {
  // A tracer of its own (exporting nowhere), so the events this test publishes carry a trace.
  let telemetry: Telemetry;
  beforeAll(async () => {
    telemetry = await startTelemetry({ serviceName: "audit-test" });
  });
  afterAll(() => telemetry.shutdown());

  test("keeps every event once, with its actor and trace, and answers filtered pages", async ({
    db,
    nats,
  }) => {
    const config = loadConfig({ NATS_URL: nats.url, DATABASE_URL: db.url, MIKROM_NAMESPACE: nats.namespace });
    const service = await startService(config);
    const nc = await connectNats({ servers: nats.url, name: "audit test" });
    try {
      const n = names(nats.namespace);
      const publisher = createPublisher(nc);
      let traceId = "";
      await withContext({ user_id: "7", user_name: "alice", request_id: "req-1" }, () =>
        withSpan("test.create", {}, async (span) => {
          traceId = span.spanContext().traceId;
          setContext({ vm_id: created.vmId });
          await publisher.send(VmCreated, n.event("vm", created.vmId, "VmCreated"), created, {
            messageId: "e-1",
          });
          await publisher.send(
            VmRunning,
            n.event("vm", created.vmId, "VmRunning"),
            { vmId: created.vmId, hostId: "host-1", ipAddress: "172.16.0.2" },
            { messageId: "e-2" },
          );
        }),
      );
      const list = querySpec(n, AUDIT_SERVICE, ListAudit);
      const all = await until(
        () => callQuery(nc, list, { page: 1, pageSize: 50 }),
        (r) => r.total >= 2,
      );
      expect(all.total).toBe(2);
      expect(all.items.map((e) => [e.eventId, e.type, e.context, e.entityId, e.vmId])).toEqual([
        ["e-1", "VmCreated", "vm", created.vmId, created.vmId],
        ["e-2", "VmRunning", "vm", created.vmId, created.vmId],
      ]);
      for (const entry of all.items) {
        expect(entry).toMatchObject({ userId: 7, userName: "alice", traceId });
      }
      expect(all.items[0]?.data).toEqual(created);

      const running = await callQuery(nc, list, { type: "VmRunning", page: 1, pageSize: 50 });
      expect(running.items.map((e) => e.eventId)).toEqual(["e-2"]);
      expect((await callQuery(nc, list, { userId: 8, page: 1, pageSize: 50 })).total).toBe(0);
      const future = new Date(Date.now() + 60_000).toISOString();
      expect((await callQuery(nc, list, { from: future, page: 1, pageSize: 50 })).total).toBe(0);
      expect((await callQuery(nc, list, { page: 2, pageSize: 1 })).items.map((e) => e.eventId)).toEqual([
        "e-2",
      ]);

      // An event seen again after JetStream's duplicate window (a relay re-sending late) adds nothing.
      const audit = openDatabase<AuditDatabase>(config.databaseUrl, { max: 1 });
      expect(await record(audit, [{ ...all.items[0]!, eventId: "e-1", streamSequence: 1 }])).toEqual([false]);
      await audit.destroy();
      expect((await callQuery(nc, list, { page: 1, pageSize: 50 })).total).toBe(2);

      // Append-only, enforced by the database itself.
      const client = new pg.Client({ connectionString: config.databaseUrl });
      await client.connect();
      await expect(client.query("DELETE FROM audit_log")).rejects.toThrow(/append-only/);
      await client.end();
    } finally {
      await nc.close();
      await service.stop();
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS "${db.name}_audit" WITH (FORCE)`);
      await admin.end();
    }
  });

  test("a filter with a NUL is refused as invalid by the service itself; a database error's text never reaches the caller", async ({
    db,
    nats,
  }) => {
    const config = loadConfig({ NATS_URL: nats.url, DATABASE_URL: db.url, MIKROM_NAMESPACE: nats.namespace });
    const service = await startService(config);
    const nc = await connectNats({ servers: nats.url, name: "audit test" });
    const client = new pg.Client({ connectionString: config.databaseUrl });
    try {
      // Asked directly, as any NATS client could: callQuery would refuse it before sending.
      const subject = querySpec(names(nats.namespace), AUDIT_SERVICE, ListAudit).subject;
      const ask = async (request: unknown) =>
        JSON.parse((await nc.request(subject, JSON.stringify(request), { timeout: 5_000 })).string());
      const nul = await ask({ vmId: "srv-\u0000", page: 1, pageSize: 50 });
      expect(nul).toMatchObject({ ok: false, error: { code: "invalid" } });
      expect(nul.error.message).toMatch(/vmId: must not contain NUL/);
      expect(nul.error.message).not.toMatch(/UTF8|encoding|0x00/);

      await client.connect();
      await client.query("ALTER TABLE audit_log RENAME TO audit_log_away");
      const broken = await ask({ page: 1, pageSize: 50 });
      expect(broken).toMatchObject({ ok: false, error: { code: "internal" } });
      expect(broken.error.message).not.toMatch(/audit_log|relation|does not exist/);
      await client.query("ALTER TABLE audit_log_away RENAME TO audit_log");
    } finally {
      await client.end();
      await nc.close();
      await service.stop();
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS "${db.name}_audit" WITH (FORCE)`);
      await admin.end();
    }
  });
  test("events recorded together are each answered on their own; one the database refuses fails alone", async ({
    db,
  }) => {
    const audit = openDatabase<AuditDatabase>(db.url, { max: 1 });
    try {
      await migrate(audit);
      const entry = (eventId: string, data: Record<string, unknown> = {}) => ({
        eventId,
        streamSequence: 1,
        type: "VmCreated",
        context: "vm",
        entityId: "srv-0a1b2c3d",
        vmId: "srv-0a1b2c3d",
        userId: 7,
        userName: "ada",
        traceId: null,
        correlationId: null,
        data,
      });
      expect(await record(audit, [entry("a")])).toEqual([true]);
      // Handled at once, as a pulled batch is: one statement, which PostgreSQL refuses for the NUL in
      // one event's jsonb; that event fails alone, the others are recorded (a was there already).
      const recordOne = recorder(audit);
      const results = await Promise.allSettled(
        [entry("b"), entry("bad", { name: "\u0000" }), entry("a"), entry("c")].map(recordOne),
      );
      expect(results.map((r) => (r.status === "fulfilled" ? r.value : "refused"))).toEqual([
        true,
        "refused",
        false,
        true,
      ]);
      const { rows } = await sql<{
        event_id: string;
      }>`SELECT event_id FROM audit_log ORDER BY event_id`.execute(audit);
      expect(rows.map((r) => r.event_id)).toEqual(["a", "b", "c"]);
    } finally {
      await audit.destroy();
    }
  });
});
