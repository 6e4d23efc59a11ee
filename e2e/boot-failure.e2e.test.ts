import { describe, expect, test } from "@mikrom/testkit";
import {
  ADMIN,
  type E2eSystem,
  login,
  poolAllocated,
  problemsOf,
  startE2eSystem,
  traceOfCreate,
  until,
  waitFor,
} from "./harness.ts";

/** Every boot fails (MIKROM_FAKE_FAILURE_RATE=1): the failure path from the driver back to the user. */
describe("a VM whose boot fails", () => {
  test("ends in error with the boot step's message, its address released, the failure logged with full context", {
    timeout: 120_000,
  }, async ({ db, nats }) => {
    const e2e: E2eSystem = await startE2eSystem({
      natsUrl: nats.url,
      databaseUrl: db.url,
      namespace: nats.namespace,
      env: { MIKROM_DRIVER: "fake", MIKROM_FAKE_FAILURE_RATE: "1", MIKROM_FAKE_LATENCY_MS: "100" },
    });
    try {
      const user = await login(e2e.api, { email: "bob@e2e.mikrom", password: "bob-password-1" }, true);
      const admin = await login(e2e.api, ADMIN);
      const me = (await user.call("GET", "/api/v1/auth/me")).body;

      const created = await user.call("POST", "/api/v1/vms", { name: "doomed-1" });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const vmId: string = created.body.vm_id;

      const failed = await waitFor(user, vmId, "error");
      expect(failed.reached, JSON.stringify(failed)).toBe(true);
      expect(failed.vm.status).toBe("error");
      // The boot step and the driver's own words reach the user.
      expect(failed.vm.error_message).toMatch(
        /^boot failed on host e2e-host at readiness: .*injected failure/,
      );

      // Compensation: the address it held goes back to the pool.
      await until(
        "the address released",
        () => poolAllocated(admin),
        (n) => n === 0,
      );
      const history = (await user.call("GET", `/api/v1/vms/${vmId}/events`)).body;
      const types = history.events.map((e: { type: string }) => e.type);
      expect(types).toEqual(expect.arrayContaining(["VmCreated", "VmProvisioning", "VmFailed"]));

      // Logged where it happened (the provisioner) and where it was decided (vm-service), each line
      // with the error, the VM, the create request's trace and the user.
      const trace = traceOfCreate(e2e, vmId);
      const booted = await until(
        "the provisioner's boot failure line",
        async () => problemsOf(e2e, "provisioner", vmId),
        (lines) => lines.some((l) => l.message === "boot failed"),
      );
      const bootLine = booted.find((l) => l.message === "boot failed")!;
      expect(bootLine).toMatchObject({
        level: "WARN",
        error: expect.stringContaining("injected failure"),
        error_type: "BootFailed",
        boot_step: "readiness",
        vm_id: vmId,
        trace_id: trace,
        user_id: String(me.id),
        user_name: me.username,
      });
      const decided = problemsOf(e2e, "vm-service", vmId).find((l) => l.message === "VM failed");
      expect(decided, "vm-service logged the VM's failure").toMatchObject({
        level: "WARN",
        step: "boot",
        error_message: failed.vm.error_message,
        vm_id: vmId,
        trace_id: trace,
        user_id: String(me.id),
      });
      expect(e2e.invalid).toEqual([]);
    } finally {
      await e2e.close();
    }
  });
});
