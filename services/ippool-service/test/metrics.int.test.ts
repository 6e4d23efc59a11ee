import { createPublisher } from "@mikrom/bus";
import { AllocateIp, IPPOOL_SERVICE, names } from "@mikrom/contracts";

import { describe, expect, startTestTelemetry, type TestTelemetry, test } from "@mikrom/testkit";
import { afterAll, beforeAll } from "vitest";
import { loadConfig } from "../src/config.ts";
import { startService } from "../src/service.ts";

let otel: TestTelemetry;
beforeAll(async () => {
  otel = await startTestTelemetry({ serviceName: "ippool-service", silenceLogs: true });
});
afterAll(() => otel.stop());

describe("ippool-service metrics", () => {
  test("report each pool's free and total addresses, and the free count drops as an address is allocated", async ({
    db,
    nats,
  }) => {
    const service = await startService(
      loadConfig({
        NATS_URL: nats.url,
        IPPOOL_DATABASE_URL: db.url,
        MIKROM_NAMESPACE: nats.namespace,
        IPPOOL_DEFAULT_CIDR: "10.77.0.0/28",
      }),
    );
    try {
      const pool = (name: string, value: number) =>
        otel.otlp.waitForMetric(
          (p) => p.name === name && p.attributes["mikrom.ippool.pool"] === "default" && p.value === value,
        );
      // A /28 without network, broadcast and gateway: 13 addresses.
      const total = await pool("mikrom.ippool.addresses", 13);
      expect(total).toMatchObject({ kind: "gauge", unit: "{address}", service: "ippool-service" });
      await pool("mikrom.ippool.free_addresses", 13);

      const n = names(nats.namespace);
      await createPublisher(nats.nc).send(AllocateIp, n.command(IPPOOL_SERVICE, "allocate"), {
        vmId: "srv-0000e0e0",
      });
      await pool("mikrom.ippool.free_addresses", 12);
    } finally {
      await service.stop();
    }
  });
});
