import { test as base, inject } from "vitest";
import "./provided.ts";
import { createTestNats, type TestNats } from "./nats.ts";
import { createTestDatabase, type TestDatabase } from "./postgres.ts";

export interface InfraFixtures {
  /** A PostgreSQL database of this test's own, dropped afterwards. */
  db: TestDatabase;
  /** A NATS connection and a namespace of this test's own; its streams are deleted afterwards. */
  nats: TestNats;
}

/** `test` with real infrastructure: `test("…", async ({ db, nats }) => …)`. */
export const test = base.extend<InfraFixtures>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads fixture dependencies from this pattern
  db: async ({}, use) => {
    const db = await createTestDatabase(inject("databaseUrl"));
    try {
      await use(db);
    } finally {
      await db.drop();
    }
  },
  // biome-ignore lint/correctness/noEmptyPattern: vitest reads fixture dependencies from this pattern
  nats: async ({}, use) => {
    const nats = await createTestNats(inject("natsUrl"));
    try {
      await use(nats);
    } finally {
      await nats.cleanup();
    }
  },
});

export { describe, expect } from "vitest";
