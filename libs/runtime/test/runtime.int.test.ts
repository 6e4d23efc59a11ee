import { describe, expect, test } from "@mikrom/testkit";
import pg from "pg";
import { z } from "zod";
import { BaseEnv, ensureDatabase, parseEnv, serviceDatabaseUrl } from "../src/index.ts";

describe("service runtime", () => {
  test("derives each service's database from the base name", () => {
    expect(serviceDatabaseUrl("postgres://postgres@127.0.0.1:5432/mikrom", "vm")).toBe(
      "postgres://postgres@127.0.0.1:5432/mikrom_vm",
    );
    expect(serviceDatabaseUrl("postgres://u:p@db:5432/", "audit")).toBe(
      "postgres://u:p@db:5432/mikrom_audit",
    );
  });

  test("creates a missing database once, even when replicas race", async ({ db }) => {
    const url = serviceDatabaseUrl(db.url, "svc");
    const outcomes = await Promise.all([ensureDatabase(url), ensureDatabase(url), ensureDatabase(url)]);
    expect(outcomes.filter((o) => o === "created").length).toBeLessThanOrEqual(1);
    expect(await ensureDatabase(url)).toBe("existed");
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    expect((await client.query("SELECT current_database() AS name")).rows[0].name).toBe(`${db.name}_svc`);
    await client.end();
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    await admin.query(`DROP DATABASE "${db.name}_svc" WITH (FORCE)`);
    await admin.end();
  });

  test("names every bad variable at once", () => {
    const schema = BaseEnv.extend({ PORT: z.coerce.number().int() });
    expect(() => parseEnv("svc", schema, { MIKROM_NAMESPACE: "a.b", LOG_FORMAT: "xml", PORT: "x" })).toThrow(
      /svc configuration is invalid:\n {2}MIKROM_NAMESPACE: .*\n {2}LOG_FORMAT: .*\n {2}PORT: /,
    );
    expect(parseEnv("svc", schema, { PORT: "8080" })).toMatchObject({
      PORT: 8080,
      MIKROM_NAMESPACE: "mikrom",
      MIKROM_STREAM_REPLICAS: 1,
    });
    expect(parseEnv("svc", schema, { PORT: "1", MIKROM_STREAM_REPLICAS: "3" }).MIKROM_STREAM_REPLICAS).toBe(
      3,
    );
    expect(() => parseEnv("svc", schema, { PORT: "1", MIKROM_STREAM_REPLICAS: "0" })).toThrow(
      /MIKROM_STREAM_REPLICAS/,
    );
  });
});
