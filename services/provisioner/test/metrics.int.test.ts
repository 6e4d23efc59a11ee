import { BootVm } from "@mikrom/contracts";

import {
  describe,
  expect,
  type ReceivedMetricPoint,
  startTestTelemetry,
  type TestTelemetry,
  test,
} from "@mikrom/testkit";
import { afterAll, beforeAll } from "vitest";
import { startProvisioner } from "../src/service.ts";
import { agentConfig, bootData, EventTap, sendCommand, tempRunDir } from "./support/agent-env.ts";

let otel: TestTelemetry;
beforeAll(async () => {
  otel = await startTestTelemetry({ serviceName: "provisioner", silenceLogs: true });
});
afterAll(() => otel.stop());

const HOST = "host-m";

function boots(outcome: string) {
  return (p: ReceivedMetricPoint): boolean =>
    p.name === "mikrom.provisioner.boot.duration" &&
    p.attributes["mikrom.provisioner.driver"] === "fake" &&
    p.attributes["mikrom.outcome"] === outcome;
}

describe("provisioner metrics", () => {
  test("time each boot by driver: a success, then (every boot failing) a failure with its step", async ({
    db,
    nats,
  }) => {
    const run = await tempRunDir();
    const tap = new EventTap(nats.nc, nats.namespace);
    const start = (failureRate: string) =>
      startProvisioner(
        agentConfig({
          NATS_URL: nats.url,
          PROVISIONER_DATABASE_URL: db.url,
          MIKROM_NAMESPACE: nats.namespace,
          MIKROM_HOST_ID: HOST,
          MIKROM_DRIVER: "fake",
          MIKROM_RUN_DIR: run.dir,
          MIKROM_FAKE_LATENCY_MS: "60",
          MIKROM_FAKE_FAILURE_RATE: failureRate,
        }),
      );
    try {
      const healthy = await start("0");
      try {
        await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData("srv-0000b001"));
        await tap.next("VmBooted", (e) => e.type === "VmBooted");
      } finally {
        await healthy.stop();
      }
      const ok = await otel.otlp.waitForMetric(boots("success"));
      expect(ok).toMatchObject({ kind: "histogram", unit: "s", service: "provisioner", count: 1 });
      expect(ok.sum).toBeGreaterThanOrEqual(0.06);
      expect(ok.attributes["mikrom.provisioner.boot.step"]).toBeUndefined();

      const failing = await start("1");
      try {
        await sendCommand(nats.nc, nats.namespace, HOST, BootVm, bootData("srv-0000b002"));
        await tap.next("VmBootFailed", (e) => e.type === "VmBootFailed");
      } finally {
        await failing.stop();
      }
      const failed = await otel.otlp.waitForMetric(boots("failure"));
      expect(failed).toMatchObject({ count: 1, attributes: { "mikrom.provisioner.boot.step": "readiness" } });
    } finally {
      tap.close();
      await run.remove();
    }
  });
});
