import { createPublisher } from "@mikrom/bus";
import { AllocateIp, IPPOOL_SERVICE, names } from "@mikrom/contracts";
import { setLogDestination, startTelemetry, type Telemetry } from "@mikrom/telemetry";
import { describe, expect, type OtlpReceiver, startOtlpReceiver, test } from "@mikrom/testkit";
import { afterAll, beforeAll } from "vitest";
import { loadConfig } from "../src/config.ts";
import { startService } from "../src/service.ts";

let receiver: OtlpReceiver;
let telemetry: Telemetry;
beforeAll(async () => {
  setLogDestination({ write: () => true });
  receiver = await startOtlpReceiver();
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.endpoint;
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = "http/json";
  process.env.OTEL_TRACES_EXPORTER = "none";
  process.env.OTEL_METRICS_EXPORTER = "otlp";
  process.env.OTEL_METRIC_EXPORT_INTERVAL = "200";
  telemetry = await startTelemetry({ serviceName: "ippool-service" });
});
afterAll(async () => {
  await telemetry.shutdown();
  await receiver.close();
  setLogDestination(undefined);
});

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
        receiver.waitForMetric(
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
