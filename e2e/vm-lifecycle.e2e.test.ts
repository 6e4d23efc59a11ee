import { existsSync } from "node:fs";
import { describe, expect, type ReceivedSpan, SpanKindOtlp, test } from "@mikrom/testkit";
import {
  ADMIN,
  type E2eSystem,
  login,
  poolAllocated,
  startE2eSystem,
  traceOfCreate,
  until,
  waitFor,
} from "./harness.ts";

const BACKEND = ["vm-service", "ippool-service", "provisioner"] as const;

describe("Mikrom end to end", () => {
  test("a user's VM goes through its whole life, traced and logged across every service", {
    timeout: 300_000,
  }, async ({ db, nats }) => {
    const e2e: E2eSystem = await startE2eSystem({
      natsUrl: nats.url,
      databaseUrl: db.url,
      namespace: nats.namespace,
    });
    try {
      const user = await login(e2e.api, { email: "alice@e2e.mikrom", password: "alice-password-1" }, true);
      const admin = await login(e2e.api, ADMIN);
      const me = (await user.call("GET", "/api/v1/auth/me")).body;

      // Create: 201 at once, then running with an address from the default pool on the host.
      const created = await user.call("POST", "/api/v1/vms", { name: "web-1", description: "e2e" });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect(created.body.status).toBe("pending");
      const vmId: string = created.body.vm_id;
      expect((await user.call("GET", `/api/v1/vms/${vmId}`)).status).toBe(200);

      const running = await waitFor(user, vmId, "running");
      expect(running.reached, JSON.stringify(running)).toBe(true);
      expect(running.vm.ip_address).toMatch(/^172\.16\.0\.\d+$/);
      expect(running.vm.host).toBe("e2e-host");
      const address: string = running.vm.ip_address;
      expect(await poolAllocated(admin)).toBe(1);

      // Stop, start, restart.
      expect((await user.call("POST", `/api/v1/vms/${vmId}/stop`)).status).toBe(202);
      expect((await waitFor(user, vmId, "stopped")).reached).toBe(true);
      expect((await user.call("POST", `/api/v1/vms/${vmId}/stop`)).status).toBe(409);
      expect((await user.call("POST", `/api/v1/vms/${vmId}/start`)).status).toBe(202);
      expect((await waitFor(user, vmId, "running")).vm.ip_address).toBe(address);
      expect((await user.call("POST", `/api/v1/vms/${vmId}/restart`)).status).toBe(202);
      expect((await waitFor(user, vmId, "running")).reached).toBe(true);

      // Its whole history, each event with its trace id.
      const history = (await user.call("GET", `/api/v1/vms/${vmId}/events`)).body;
      const types = (history.events ?? history.items ?? history).map((e: { type: string }) => e.type);
      expect(types).toEqual(
        expect.arrayContaining([
          "VmCreated",
          "VmProvisioning",
          "VmRunning",
          "VmStopRequested",
          "VmStopped",
          "VmStartRequested",
          "VmRestartRequested",
        ]),
      );

      // Delete: gone from reads, the address free again.
      expect((await user.call("DELETE", `/api/v1/vms/${vmId}`)).status).toBe(202);
      await until(
        "the VM gone",
        () => user.call("GET", `/api/v1/vms/${vmId}`),
        (r) => r.status === 404,
        90_000,
      );
      await until(
        "the address released",
        () => poolAllocated(admin),
        (n) => n === 0,
      );

      // One trace for the create request, across every service and NATS hop.
      const createTrace = traceOfCreate(e2e, vmId);
      const spans = await e2e.otlp.waitFor(
        (all) =>
          servicesIn(all, createTrace).length >= 4 &&
          hasSpan(all, createTrace, "provisioner", SpanKindOtlp.CONSUMER),
        30_000,
      );
      const trace = spans.filter((s) => s.traceId === createTrace);
      expect(servicesIn(spans, createTrace).sort()).toEqual(
        expect.arrayContaining(["api-gateway", "ippool-service", "provisioner", "vm-service"]),
      );
      const byId = new Map(trace.map((s) => [s.spanId, s]));
      for (const consumer of trace.filter((s) => s.kind === SpanKindOtlp.CONSUMER)) {
        const parent = byId.get(consumer.parentSpanId);
        expect(parent?.kind, `${consumer.service} ${consumer.name}`).toBe(SpanKindOtlp.PRODUCER);
      }
      const hops = trace
        .filter((s) => s.kind === SpanKindOtlp.CONSUMER)
        .map((s) => `${s.service}:${s.attributes["messaging.destination.name"]}`);
      expect(hops.some((h) => h.startsWith("vm-service:") && h.includes(".cmd.vm."))).toBe(true);
      expect(hops.some((h) => h.startsWith("ippool-service:") && h.includes(".cmd.ippool."))).toBe(true);
      expect(hops.some((h) => h.startsWith("provisioner:") && h.includes(".cmd.provisioner."))).toBe(true);
      expect(hops.some((h) => h.startsWith("vm-service:") && h.includes(".evt.provisioner."))).toBe(true);

      // The log lines of that operation: its trace id, the VM's id; the provisioner knows the user.
      for (const service of [...BACKEND, "api-gateway"] as const) {
        const ofTrace = e2e.lines.filter((l) => l.service === service && l.entry.trace_id === createTrace);
        expect(ofTrace.length, `${service} logged for the create trace`).toBeGreaterThan(0);
        if (service !== "api-gateway") {
          for (const l of ofTrace) expect(l.entry.vm_id, `${service}: ${l.entry.message}`).toBe(vmId);
        } else {
          expect(ofTrace.some((l) => l.entry.vm_id === vmId)).toBe(true);
        }
      }
      for (const l of e2e.lines.filter(
        (x) => x.service === "provisioner" && x.entry.trace_id === createTrace,
      )) {
        expect(l.entry.user_id, l.entry.message as string).toBe(String(me.id));
        expect(l.entry.user_name, l.entry.message as string).toBe(me.username);
      }

      // The audit log holds every event of the VM, with actor and trace id.
      const audit = await until(
        "the audit log",
        () => admin.call("GET", `/api/v1/audit?vm_id=${vmId}&page_size=100`),
        (r) => r.status === 200 && r.body.items.some((e: { type: string }) => e.type === "VmDeleted"),
      );
      const audited = audit.body.items as Array<{
        type: string;
        trace_id: string | null;
        user_id: number | null;
      }>;
      for (const type of types) expect(audited.map((e) => e.type)).toContain(type);
      for (const e of audited) expect(e.trace_id, e.type).toMatch(/^[0-9a-f]{32}$/);
      expect(audited.find((e) => e.type === "VmCreated")?.user_id).toBe(me.id);
      expect((await user.call("GET", "/api/v1/audit")).status).toBe(403);

      // The VM was a real microVM wherever QEMU is installed (.ci/run installs it).
      const hosts = await admin.call("GET", "/api/v1/audit?type=HostRegistered&page_size=100");
      const driver = hosts.body.items[0]?.data.driver;
      expect(driver).toBe(existsSync("/usr/bin/qemu-system-x86_64") ? "qemu" : "fake");

      // Every line every service wrote is a valid JSON log line with the required fields.
      expect(e2e.invalid).toEqual([]);
      expect(e2e.lines.length).toBeGreaterThan(50);
    } finally {
      await e2e.close();
    }
  });
});

function servicesIn(spans: ReceivedSpan[], traceId: string): string[] {
  return [...new Set(spans.filter((s) => s.traceId === traceId).map((s) => s.service))];
}

function hasSpan(spans: ReceivedSpan[], traceId: string, service: string, kind: number): boolean {
  return spans.some((s) => s.traceId === traceId && s.service === service && s.kind === kind);
}
