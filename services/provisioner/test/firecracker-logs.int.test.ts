import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { BootVm, DestroyVm, RebootVm, ResumeVm, ShutDownVm } from "@mikrom/contracts";
import { setLogDestination } from "@mikrom/telemetry";
import { captureLogs, describe, expect, type LogLine, startTestTelemetry, test } from "@mikrom/testkit";
import { startProvisioner } from "../src/service.ts";
import { agentConfig, bootData, EventTap, sendCommand, tempRunDir } from "./support/agent-env.ts";

/** The project's fake Firecracker (a spec-validating API server), run as the `firecracker` binary. */
const FAKE_CLI = fileURLToPath(new URL("../src/drivers/firecracker/fake-cli.ts", import.meta.url));
const HOST = "host-fc";
const VM = "srv-0000fc10";
const USER = { id: "42", name: "bob" };

/** What a driver line says: an API call as `PUT /path [action]`, any other line by its message. */
function said(line: LogLine): string {
  if (line.message !== "Firecracker API call") return String(line.message);
  return [line.method, line.path, line.action_type].filter(Boolean).join(" ");
}

const BOOT = [
  "PUT /machine-config",
  "PUT /boot-source",
  "PUT /actions InstanceStart",
  "firecracker started the VM, waiting for the guest",
  "guest ready",
];
const STOP = ["PUT /actions SendCtrlAltDel", "firecracker ended"];

describe("the provisioner on the firecracker driver", () => {
  test("logs each call to Firecracker's API under the command's trace and span, with the VM and the user", {
    timeout: 60_000,
  }, async ({ db, nats }) => {
    const otel = await startTestTelemetry({ serviceName: "provisioner", traces: true, metrics: false });
    const logs = captureLogs();
    setLogDestination(logs);
    const bin = await mkdtemp(join(tmpdir(), "mikrom-fc-bin-"));
    const run = await tempRunDir();
    const tap = new EventTap(nats.nc, nats.namespace);
    const commands: Array<{ type: string; id: string; answer: string; driver: string[] }> = [];
    try {
      // The agent finds `firecracker` as it would on a host: an executable named by MIKROM_FIRECRACKER_BINARY.
      const binary = join(bin, "firecracker");
      await writeFile(binary, `#!/bin/sh\nexec "${process.execPath}" "${FAKE_CLI}" "$@"\n`);
      await chmod(binary, 0o755);
      const kernel = join(bin, "vmlinux");
      await writeFile(kernel, "kernel");
      const agent = await startProvisioner(
        agentConfig({
          NATS_URL: nats.url,
          PROVISIONER_DATABASE_URL: db.url,
          MIKROM_NAMESPACE: nats.namespace,
          MIKROM_HOST_ID: HOST,
          MIKROM_DRIVER: "firecracker",
          MIKROM_FIRECRACKER_BINARY: binary,
          MIKROM_FIRECRACKER_KERNEL: kernel,
          MIKROM_RUN_DIR: run.dir,
        }),
      );
      try {
        const steps = [
          [BootVm, bootData(VM), "VmBooted", BOOT],
          [ShutDownVm, { vmId: VM }, "VmShutDown", STOP],
          [ResumeVm, { vmId: VM }, "VmBooted", BOOT],
          [RebootVm, { vmId: VM }, "VmBooted", [...STOP, ...BOOT]],
          [DestroyVm, { vmId: VM }, "VmDestroyed", ["firecracker ended"]],
        ] as const;
        for (const [def, data, answer, driver] of steps) {
          const id = await sendCommand(nats.nc, nats.namespace, HOST, def, data as never, USER);
          const answered = await tap.next(`the answer to ${def.type}`, (e) => e.causationId === id, {
            timeoutMs: 20_000,
          });
          expect(answered.type, JSON.stringify(answered.data)).toBe(answer);
          commands.push({ type: def.type, id, answer, driver: [...driver] });
        }
      } finally {
        await agent.stop();
      }
      await otel.telemetry.flush();

      for (const command of commands) {
        // The agent's line answering the command gives the command's trace.
        const answered = logs.lines.find(
          (l) => l.message === `${command.type}: ${command.answer}` && l.message_id === command.id,
        );
        const traceId = answered?.trace_id as string;
        expect(traceId, command.type).toMatch(/^[0-9a-f]{32}$/);
        const driverLines = logs.lines.filter(
          (l) => l.logger === "mikrom.provisioner.driver.firecracker" && l.trace_id === traceId,
        );
        expect(driverLines.map(said), command.type).toEqual(command.driver);
        const spans = await otel.otlp.waitFor((all) =>
          driverLines.every((l) => all.some((s) => s.traceId === traceId && s.spanId === l.span_id)),
        );
        for (const line of driverLines) {
          expect(line, `${command.type}: ${said(line)}`).toMatchObject({
            vm_id: VM,
            user_id: USER.id,
            user_name: USER.name,
            action: command.type,
            service: "provisioner",
          });
          const span = spans.find((s) => s.traceId === traceId && s.spanId === line.span_id);
          expect(span?.service, `${command.type}: ${said(line)}`).toBe("provisioner");
          if (line.message === "Firecracker API call") {
            expect(line.duration_ms, said(line)).toBeGreaterThan(0);
          }
        }
      }
    } finally {
      tap.close();
      setLogDestination(undefined);
      await otel.stop();
      await run.remove();
      await rm(bin, { recursive: true, force: true });
    }
  });
});
