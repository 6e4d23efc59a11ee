import { appendFileSync } from "node:fs";
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BootVm, DestroyVm, RebootVm, ResumeVm, ShutDownVm } from "@mikrom/contracts";
import { setLogDestination } from "@mikrom/telemetry";
import { captureLogs, describe, expect, type LogLine, startTestTelemetry, test } from "@mikrom/testkit";
import { isAlive } from "../src/drivers/process.ts";
import { startProvisioner } from "../src/service.ts";
import { agentConfig, bootData, EventTap, sendCommand, tempRunDir } from "./support/agent-env.ts";
import { type FakeFirecracker, startFakeFirecracker } from "./support/firecracker/fake-server.ts";
import { loadFirecrackerSpec } from "./support/firecracker/spec.ts";

const HOST = "host-fc";
const VM = "srv-0000fc10";
const USER = { id: "42", name: "bob" };

/**
 * The project's fake Firecracker (a spec-validating API server), served from this process behind a
 * `firecracker` executable the agent spawns and supervises as it would the real one: the executable
 * asks for its `--api-sock` to be served, then runs until the simulated guest shuts down (after
 * SendCtrlAltDel) or a signal ends it. A fake process per boot would load and compile the API spec
 * again, seconds on a busy machine against the driver's 5 s wait for the socket.
 */
async function fakeFirecrackerHost(dir: string, runDir: string): Promise<{ binary: string; close(): void }> {
  const binary = join(dir, "firecracker");
  const script = [
    "#!/bin/sh",
    'sock="$2"',
    'rm -f "$sock.down"',
    'echo $$ > "$sock.serve"',
    "trap 'exit 143' TERM INT",
    'while [ ! -e "$sock.down" ]; do sleep 0.02; done',
  ];
  await writeFile(binary, `${script.join("\n")}\n`);
  await chmod(binary, 0o755);
  const spec = loadFirecrackerSpec();
  const ends = new Set<() => Promise<void>>();
  let scanning = false;
  const serve = async (vmDir: string, pid: number): Promise<void> => {
    const socketPath = join(vmDir, "firecracker.sock");
    let fake: FakeFirecracker | undefined;
    let ended = false;
    const end = async (): Promise<void> => {
      if (ended) return;
      ended = true;
      clearInterval(watch);
      ends.delete(end);
      await fake?.close();
      await rm(socketPath, { force: true });
      await writeFile(`${socketPath}.down`, "").catch(() => {});
    };
    const watch = setInterval(async () => {
      if (!(await isAlive(pid))) await end();
    }, 50);
    ends.add(end);
    fake = await startFakeFirecracker({
      socketPath,
      spec,
      console: (text) => appendFileSync(join(vmDir, "console.log"), text),
      onGuestShutdown: () => void end(),
    });
  };
  const scan = setInterval(async () => {
    if (scanning) return;
    scanning = true;
    try {
      for (const vm of await readdir(runDir).catch(() => [])) {
        const request = join(runDir, vm, "firecracker.sock.serve");
        const pid = Number.parseInt(await readFile(request, "utf8").catch(() => ""), 10);
        if (!Number.isInteger(pid)) continue;
        await rm(request, { force: true });
        await serve(join(runDir, vm), pid);
      }
    } finally {
      scanning = false;
    }
  }, 20);
  return {
    binary,
    close() {
      clearInterval(scan);
      for (const end of ends) void end();
    },
  };
}

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
    const firecracker = await fakeFirecrackerHost(bin, run.dir);
    const tap = new EventTap(nats.nc, nats.namespace);
    const commands: Array<{ type: string; id: string; answer: string; driver: string[] }> = [];
    try {
      const kernel = join(bin, "vmlinux");
      await writeFile(kernel, "kernel");
      const agent = await startProvisioner(
        agentConfig({
          NATS_URL: nats.url,
          PROVISIONER_DATABASE_URL: db.url,
          MIKROM_NAMESPACE: nats.namespace,
          MIKROM_HOST_ID: HOST,
          MIKROM_DRIVER: "firecracker",
          MIKROM_FIRECRACKER_BINARY: firecracker.binary,
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
      firecracker.close();
      tap.close();
      setLogDestination(undefined);
      await otel.stop();
      await run.remove();
      await rm(bin, { recursive: true, force: true });
    }
  });
});
