/**
 * Ten qemu microVMs booted at once (issue #7's acceptance run): every guest must reach readiness;
 * prints each boot time (spawn to readiness line) and the wall time. Under TCG this is CPU-bound:
 * on two cores expect ~35 s per guest (MICROVM-NOTES.md). Exits 1 if any guest failed.
 *   node_modules/.bin/node bench/provisioner-burst.bench.ts [count]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setLogDestination } from "@mikrom/telemetry";
import type { Instance } from "../services/provisioner/src/drivers/driver.ts";
import { QemuDriver } from "../services/provisioner/src/drivers/qemu/driver.ts";
import { buildGuest, defaultGuestDir } from "../services/provisioner/src/drivers/qemu/guest.ts";
import { hostTscKhz } from "../services/provisioner/src/drivers/qemu/host-clock.ts";
import { probeKvm } from "../services/provisioner/src/drivers/qemu/kvm-probe.ts";

const COUNT = Number(process.argv[2] ?? 10);
setLogDestination({ write: () => true });

const guest = await buildGuest(defaultGuestDir(process.env));
const kvm = await probeKvm({ guest, runDir: join(tmpdir(), "mikrom-bench-probe") });
const accel = kvm.usable ? "kvm" : "tcg";
const runDir = await mkdtemp(join(tmpdir(), "mkburst-"));
const driver = new QemuDriver({ guest, accel, runDir, tscKhz: await hostTscKhz(), bootTimeoutMs: 150_000 });

const started = Date.now();
const results = await Promise.allSettled(
  Array.from({ length: COUNT }, (_, i) =>
    driver.boot({
      vmId: `burst-${i}`,
      vcpuCount: 1,
      memoryMb: 128,
      ipAddress: `10.99.1.${i + 2}`,
      prefixLength: 24,
    }),
  ),
);
const wallMs = Date.now() - started;
const booted = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
const failed = results.flatMap((r) => (r.status === "rejected" ? [String(r.reason)] : []));
await Promise.all(booted.map((vm: Instance) => driver.destroy(vm)));
await driver.close();
await rm(runDir, { recursive: true, force: true });

const times = booted.map((vm) => vm.bootMs ?? Number.NaN).sort((a, b) => a - b);
process.stdout.write(
  `${COUNT} qemu microVMs at once (${accel}, 1 vCPU, 128 MiB each) on a host with its other load\n`,
);
process.stdout.write(`ready ${booted.length}/${COUNT}  wall ${wallMs} ms\n`);
process.stdout.write(`boot ms each (sorted): ${times.join(" ")}\n`);
if (times.length > 0) {
  const p50 = times[Math.floor((times.length - 1) / 2)];
  process.stdout.write(`boot min ${times[0]}  p50 ${p50}  max ${times.at(-1)} ms\n`);
}
for (const reason of failed) process.stdout.write(`failed: ${reason}\n`);
process.exit(failed.length > 0 ? 1 : 0);
