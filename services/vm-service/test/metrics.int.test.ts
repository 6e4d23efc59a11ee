import { CreateVm, HostRegistered, IpAllocated, StopVm, VmBooted, VmShutDown } from "@mikrom/contracts";
import {
  describe,
  expect,
  type ReceivedMetricPoint,
  startTestTelemetry,
  type TestTelemetry,
  test,
} from "@mikrom/testkit";
import { afterAll, beforeAll } from "vitest";
import { OWNER, testConfig, vmIdOf, World, withService } from "./harness.ts";

/** Metrics leave through the real OTLP/HTTP exporter (JSON) to a real receiver, every 200 ms. */
let otel: TestTelemetry;
beforeAll(async () => {
  otel = await startTestTelemetry({ serviceName: "vm-service" });
});
afterAll(() => otel.stop());

const HOST = "host-m";

function point(
  name: string,
  attributes: Record<string, string>,
  accept: (p: ReceivedMetricPoint) => boolean,
) {
  return (p: ReceivedMetricPoint): boolean =>
    p.name === name && Object.entries(attributes).every(([k, v]) => p.attributes[k] === v) && accept(p);
}

describe("vm-service metrics", () => {
  test("time create→running and stop→stopped by operation and outcome, and count VMs by status", async ({
    db,
    nats,
  }) => {
    const w = new World(nats);
    await withService(testConfig(db, nats), async () => {
      await w.publish(w.names.event("host", HOST, "HostRegistered"), HostRegistered, {
        hostId: HOST,
        driver: "fake",
        vcpus: 8,
        memoryMb: 8192,
        startedAt: new Date().toISOString(),
      });
      const vmId = vmIdOf(0x4d);
      await w.command("create", CreateVm, {
        vmId,
        actor: OWNER,
        name: "metered",
        description: null,
        vcpuCount: 1,
        memoryMb: 512,
      });
      await w.commands.ofType("AllocateIp", vmId);
      await w.publish(w.names.event("ippool", vmId, "IpAllocated"), IpAllocated, {
        vmId,
        poolId: "pool-0000aaaa",
        pool: "default",
        address: "10.0.0.77",
        prefixLength: 24,
        gateway: "10.0.0.1",
      });
      await w.commands.ofType("BootVm", vmId);
      await w.publish(w.names.event("provisioner", HOST, "VmBooted"), VmBooted, {
        vmId,
        hostId: HOST,
        driver: "fake",
        bootMs: 1,
      });
      await w.until(vmId, "running");

      const created = await otel.otlp.waitForMetric(
        point(
          "mikrom.vm.operation.duration",
          { "mikrom.vm.operation": "create", "mikrom.outcome": "success" },
          () => true,
        ),
      );
      expect(created).toMatchObject({ kind: "histogram", unit: "s", service: "vm-service", count: 1 });
      expect(created.sum).toBeGreaterThan(0);
      await otel.otlp.waitForMetric(
        point("mikrom.vms", { "mikrom.vm.status": "running" }, (p) => p.value === 1),
      );

      await w.command("stop", StopVm, { vmId, actor: OWNER });
      await w.commands.ofType("ShutDownVm", vmId);
      await otel.otlp.waitForMetric(
        point("mikrom.vms", { "mikrom.vm.status": "stopping" }, (p) => p.value === 1),
      );
      // A status no VM holds any more is reported as 0, not left at its last value.
      await otel.otlp.waitForMetric(
        point("mikrom.vms", { "mikrom.vm.status": "running" }, (p) => p.value === 0),
      );

      await w.publish(w.names.event("provisioner", HOST, "VmShutDown"), VmShutDown, { vmId, hostId: HOST });
      await w.until(vmId, "stopped");
      const stopped = await otel.otlp.waitForMetric(
        point(
          "mikrom.vm.operation.duration",
          { "mikrom.vm.operation": "stop", "mikrom.outcome": "success" },
          () => true,
        ),
      );
      expect(stopped.count).toBe(1);
    });
  });
});
