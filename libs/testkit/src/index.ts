export { InfrastructureMissing } from "./errors.ts";
export { describe, expect, type InfraFixtures, test } from "./fixtures.ts";
export { type Infrastructure, LOCAL_DATABASE_URL, LOCAL_NATS_URL, resolveInfrastructure } from "./infra.ts";
export { uniqueName } from "./names.ts";
export { connectNats, createTestNats, type TestNats } from "./nats.ts";
export { createTestDatabase, type TestDatabase, withDatabase } from "./postgres.ts";
