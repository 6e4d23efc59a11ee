import { createTestDatabase, createTestNats, describe, expect, test } from "@mikrom/testkit";
import { inject } from "vitest";
import { fuzz } from "./fuzz/run.ts";
import { ADMIN, startE2eSystem } from "./harness.ts";

/** 1,500 here; `npm run fuzz` asks for 10,000 (MIKROM_FUZZ_RUNS), MIKROM_FUZZ_SEED replays a run. */
const RUNS = Number(process.env.MIKROM_FUZZ_RUNS ?? 1_500);
const SEED = Number(process.env.MIKROM_FUZZ_SEED ?? Date.now() % 2 ** 31);

describe("the API fuzzed from its own OpenAPI document, against every service", () => {
  test("no 5xx but 503-with-Retry-After, every error problem+json, every accepted create a VM, nothing dead-lettered", {
    timeout: 120_000 + RUNS * 60,
  }, async () => {
    const db = await createTestDatabase(inject("databaseUrl"));
    const nats = await createTestNats(inject("natsUrl"));
    const e2e = await startE2eSystem({
      natsUrl: nats.url,
      databaseUrl: db.url,
      namespace: nats.namespace,
      env: {
        MIKROM_DRIVER: "fake",
        MIKROM_FAKE_LATENCY_MS: "20",
        MIKROM_HOST_VCPUS: "1000000",
        MIKROM_HOST_MEMORY_MB: "1000000000",
        IPPOOL_DEFAULT_CIDR: "10.200.0.0/16",
        // Quotas and limits out of the way, so that valid-looking requests reach the services.
        MAX_VMS_PER_USER: "100000",
        MAX_VCPUS_PER_USER: "3200000",
        MAX_MEMORY_MB_PER_USER: "3276800000",
        RATE_LIMIT_PER_IP: "10000000",
        RATE_LIMIT_PER_USER: "10000000",
        RATE_LIMIT_AUTH_PER_IP: "10000000",
        LOGIN_FREE_FAILURES_PER_ACCOUNT: "10000000",
        LOGIN_FREE_FAILURES_PER_IP: "10000000",
        MIKROM_REGISTRATION: "open",
        OTEL_TRACES_SAMPLER: "always_off",
        OTEL_TRACES_EXPORTER: "none",
        LOG_LEVEL: "warn",
      },
    });
    try {
      const report = await fuzz({
        api: e2e.api,
        natsUrl: nats.url,
        namespace: nats.namespace,
        superuser: ADMIN,
        runs: RUNS,
        seed: SEED,
        concurrency: 8,
      });
      process.stdout.write(`${report.summary}\n`);
      expect(report.requests).toBe(RUNS);
      expect(report.serverErrors.slice(0, 20)).toEqual([]);
      expect(report.notProblems.slice(0, 20)).toEqual([]);
      expect(report.lostCreates.slice(0, 20)).toEqual([]);
      expect(report.deadLetters.slice(0, 20)).toEqual([]);
      // The fuzz reached the services: VMs were made, and requests were refused by them, not only
      // by the gateway's validation.
      expect(report.createsAccepted).toBeGreaterThan(0);
      expect(e2e.stderr.filter((l) => !/ExperimentalWarning|--trace-warnings/.test(l))).toEqual([]);
    } finally {
      await e2e.close();
      await nats.cleanup();
      await db.drop();
    }
  });
});
